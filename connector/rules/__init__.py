"""The rule table: which records become which Attentive calls (models, compiled rules, checks, router)."""
