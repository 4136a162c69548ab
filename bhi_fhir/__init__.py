"""bhi-fhir: behavioral-health integration in primary care, on FHIR."""

__version__ = "0.1.0"
