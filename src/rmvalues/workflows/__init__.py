"""Workflows that chain the layers end to end for one question (score → analyse → report), e.g.
:func:`rmvalues.workflows.audit.audit` behind ``rmvalues audit``. Each is a short sequence of calls
into the layers below; none holds scoring or statistics of its own."""
