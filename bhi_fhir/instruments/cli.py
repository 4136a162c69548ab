"""`bhi-fhir score` (placeholder until the scorer lands)."""
