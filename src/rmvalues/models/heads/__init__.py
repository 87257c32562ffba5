"""Score heads: one small class per head type, vendored so no ``trust_remote_code`` is needed."""
