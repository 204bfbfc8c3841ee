"""Pure value types and rules: the Service model, field errors, defaulting, validation."""
