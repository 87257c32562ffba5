# Golden numbers for the statistics tests (issues 20 and 21), computed in R.
#
# Run from the repository root, with the released Big Two scores in $RMVALUES_PAPER_DATA
# (default ../shared/paper-data) and the lexicon in $RMVALUES_LEXICON_DIR (default
# ../shared/corpora):
#
#     Rscript tests/r/golden.R > tests/r/golden.out
#
# Every line of golden.out is "key<TAB>value" (value printed with 12 significant digits); the
# tests cite the key next to each number. R 4.2.2, nlme 3.1-162 (stats for t.test and p.adjust).
# Effect sizes are written out by hand (effsize is not installed): Cohen's d with the pooled SD
# (Cohen 1988), d_rms = diff / sqrt((s1^2 + s2^2) / 2) (Cohen's sigma' with averaged variances),
# d_av = diff / ((s1 + s2) / 2) (Lakens 2013), Hedges' g = d * (1 - 3 / (4 (n1 + n2) - 9)).
# The units are built here from the released CSVs, independently of the Python code.

suppressMessages(library(nlme))

out <- function(key, value) cat(sprintf("%s\t%.12g\n", key, value))
out_text <- function(key, value) cat(sprintf("%s\t%s\n", key, value))
stars <- function(p) ifelse(p < 0.001, "***", ifelse(p < 0.01, "**", ifelse(p < 0.05, "*", "n.s.")))
d_rms <- function(x, y) (mean(x) - mean(y)) / sqrt((var(x) + var(y)) / 2)
d_av <- function(x, y) (mean(x) - mean(y)) / ((sd(x) + sd(y)) / 2)
cohen_d <- function(x, y) {
  nx <- length(x); ny <- length(y)
  (mean(x) - mean(y)) / sqrt(((nx - 1) * var(x) + (ny - 1) * var(y)) / (nx + ny - 2))
}
hedges_g <- function(x, y) cohen_d(x, y) * (1 - 3 / (4 * (length(x) + length(y)) - 9))
lme_tables <- function(prefix, fit) {
  tt <- summary(fit)$tTable
  for (term in rownames(tt)) {
    out(paste0(prefix, ".fixed.", term, ".estimate"), tt[term, "Value"])
    out(paste0(prefix, ".fixed.", term, ".se"), tt[term, "Std.Error"])
    out(paste0(prefix, ".fixed.", term, ".df"), tt[term, "DF"])
    out(paste0(prefix, ".fixed.", term, ".p"), tt[term, "p-value"])
  }
  for (type in c("sequential", "marginal")) {
    a <- anova(fit, type = type)
    for (term in rownames(a)) {
      out(paste0(prefix, ".anova_", type, ".", term, ".F"), a[term, "F-value"])
      out(paste0(prefix, ".anova_", type, ".", term, ".den_df"), a[term, "denDF"])
      out(paste0(prefix, ".anova_", type, ".", term, ".p"), a[term, "p-value"])
    }
  }
  out(paste0(prefix, ".loglik"), as.numeric(logLik(fit)))
  out(paste0(prefix, ".group_variance"), as.numeric(VarCorr(fit)[1, "Variance"]))
  out_text(paste0(prefix, ".term_order"), paste(attr(terms(formula(fit)), "term.labels"), collapse = ","))
  out_text(paste0(prefix, ".fixed_names"), paste(rownames(tt), collapse = ","))
}

# --- Big Two units from the released scores ---------------------------------------------------
data_dir <- Sys.getenv("RMVALUES_PAPER_DATA", "../shared/paper-data")
lex_dir <- Sys.getenv("RMVALUES_LEXICON_DIR", "../shared/corpora")
lexicon <- read.csv(file.path(lex_dir, "dict_big2_nouns.csv"), stringsAsFactors = FALSE)
names(lexicon) <- c("category", "response")
# Model sizes (billions of parameters) as in src/rmvalues/models/registry.toml.
size_b <- c("Ray2333_GRM-gemma2-2B-rewardmodel-ft" = 2, "Ray2333_GRM-Llama3.2-3B-rewardmodel-ft" = 3)
files <- sort(list.files(file.path(data_dir, "dict_big2_nouns"), pattern = "^big2_rewards_.*\\.csv$",
                         full.names = TRUE))
rows <- list()
for (f in files) {
  model <- sub("^big2_rewards_(.*)\\.csv$", "\\1", basename(f))
  wide <- read.csv(f, stringsAsFactors = FALSE, check.names = FALSE)
  wide <- merge(wide, lexicon, by = "response")  # exact match of the response to a lexicon term
  for (prompt in setdiff(names(wide), c("response", "category"))) {
    r <- rank(-wide[[prompt]], ties.method = "average")  # 1 = highest score, within model x prompt
    med <- tapply(r, wide$category, median)
    parts <- strsplit(prompt, "_")[[1]]
    rows[[length(rows) + 1]] <- data.frame(
      model = model, prompt_id = prompt, category = names(med), median_rank = as.numeric(med),
      n_items = nrow(wide), adjective = parts[1], context = parts[2],
      base = ifelse(grepl("gemma", model, ignore.case = TRUE), "Gemma", "Llama"),
      size_b = ifelse(model %in% names(size_b), size_b[model],
                      ifelse(grepl("gemma", model, ignore.case = TRUE), 27, 8)))
  }
}
u <- do.call(rbind, rows)
u$framing <- factor(ifelse(u$adjective %in% c("best", "good", "greatest"), "positive", "negative"),
                    levels = c("positive", "negative"))
u$base <- factor(u$base); u$category <- factor(u$category); u$context <- factor(u$context)
out("big2.n_units", nrow(u))
out("big2.items_per_prompt", unique(u$n_items))
for (fr in levels(u$framing)) {
  out(paste0("big2.framing.", fr, ".mean"), mean(u$median_rank[u$framing == fr]))
  out(paste0("big2.framing.", fr, ".sd"), sd(u$median_rank[u$framing == fr]))
}

# The paper's model (Fig 1). For the Big Two nouns paper mode and the corrected mode build the same
# units (no noun has two categories), so these are the paper-mode numbers too.
paper <- lme(median_rank ~ base * category * framing, random = ~ 1 | model, data = u, method = "REML")
lme_tables("big2.paper", paper)

# Panel tests: Gemma vs Llama per category x framing, Welch (t.test), corrections over 4 panels.
keys <- expand.grid(framing = levels(u$framing), category = levels(u$category), stringsAsFactors = FALSE)
keys <- keys[order(keys$category, match(keys$framing, levels(u$framing))), ]
p_welch <- c()
for (i in seq_len(nrow(keys))) {
  key <- paste0("big2.panel.", keys$category[i], ".", keys$framing[i])
  sel <- u$category == keys$category[i] & u$framing == keys$framing[i]
  x <- u$median_rank[sel & u$base == "Gemma"]; y <- u$median_rank[sel & u$base == "Llama"]
  tt <- t.test(x, y)  # Welch (var.equal = FALSE)
  out(paste0(key, ".t"), tt$statistic); out(paste0(key, ".df"), tt$parameter)
  out(paste0(key, ".p_welch"), tt$p.value)
  out(paste0(key, ".d_rms"), d_rms(x, y)); out(paste0(key, ".d_av"), d_av(x, y))
  out(paste0(key, ".cohen_d"), cohen_d(x, y)); out(paste0(key, ".hedges_g"), hedges_g(x, y))
  p_welch <- c(p_welch, tt$p.value)
}
for (method in c("bonferroni", "holm", "BH")) {
  adj <- p.adjust(p_welch, method)
  for (i in seq_len(nrow(keys))) {
    key <- paste0("big2.panel.", keys$category[i], ".", keys$framing[i], ".", method)
    out(key, adj[i]); out_text(paste0(key, ".stars"), stars(adj[i]))
  }
}

# --- Boundary fits: the random-intercept variance's REML optimum is 0 ----------------------------
# nlme stops a hair inside (variance ~1e-5); gls() is the same model exactly at the boundary.
boundary <- lme(median_rank ~ base * context + size_b + category, random = ~ 1 | model, data = u,
                method = "REML")
lme_tables("big2.boundary", boundary)
out("big2.boundary.gls_loglik",
    as.numeric(logLik(gls(median_rank ~ base * context + size_b + category, data = u, method = "REML"))))
# R's term order with a numeric covariate first (patsy would move size_b last); also on the boundary.
order <- lme(median_rank ~ size_b + base + category, random = ~ 1 | model, data = u, method = "REML")
lme_tables("big2.order", order)
out("big2.order.gls_loglik",
    as.numeric(logLik(gls(median_rank ~ size_b + base + category, data = u, method = "REML"))))

# --- R-style names: another reference level, and an interaction without one main effect ----------
ub <- u; ub$base <- relevel(ub$base, ref = "Llama")
lme_tables("big2.names", lme(median_rank ~ base * category, random = ~ 1 | model, data = ub,
                             method = "REML"))
lme_tables("big2.nested", lme(median_rank ~ category:framing + framing, random = ~ 1 | model,
                              data = u, method = "REML"))

# --- A family where the correction changes the verdict (6 panels, n = 6 + 6) --------------------
v <- c(0.2, -1.1, 0.7, 1.5, -0.4, -0.9)
w <- c(-0.6, 0.9, 0.3, -1.3, 1.2, -0.5)
shifts <- c(2.94, 1.96, 1.83, 1.56, 1.43, 1.30)  # Gemma = v + shift, Llama = w, one panel each
p6 <- sapply(shifts, function(s) t.test(v + s, w)$p.value)
for (i in seq_along(shifts)) out(paste0("family.", i, ".p_welch"), p6[i])
for (method in c("none", "bonferroni", "holm", "BH")) {
  adj <- p.adjust(p6, method)
  for (i in seq_along(shifts)) {
    out(paste0("family.", i, ".", method), adj[i])
    out_text(paste0("family.", i, ".", method, ".stars"), stars(adj[i]))
  }
}
# Effect sizes of panel 1 (unequal SDs after scaling Llama by 2: d_rms and d_av differ).
x <- v + shifts[1]; y <- 2 * w
out("family.scaled.d_rms", d_rms(x, y)); out("family.scaled.d_av", d_av(x, y))
out("family.scaled.cohen_d", cohen_d(x, y)); out("family.scaled.hedges_g", hedges_g(x, y))

# --- BCa bootstrap CI of d_rms (boot::boot.ci, stratified resampling, 20,000 resamples) ---------
# Small groups with a large effect: d_rms is biased upwards, so BCa shifts the interval down from
# the percentile one (by ~0.2). The Monte Carlo error of each limit is ~0.02 (seeds 1-3 give lower
# limits 0.572-0.592), which the test's tolerance allows for.
suppressMessages(library(boot))
x <- qnorm(ppoints(10)) + 1.5; y <- qnorm(ppoints(12))
grp <- rep(1:2, c(length(x), length(y)))
set.seed(1)
b <- boot(c(x, y), function(d, i) { g <- grp[i]; d_rms(d[i][g == 1], d[i][g == 2]) }, R = 20000,
          strata = grp)
ci <- boot.ci(b, type = c("bca", "perc"))
out("bca.d_rms", d_rms(x, y))
out("bca.lo", ci$bca[4]); out("bca.hi", ci$bca[5])
out("bca.percentile_lo", ci$percent[4]); out("bca.percentile_hi", ci$percent[5])
