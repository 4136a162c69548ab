"""Quality measures computed from a practice's FHIR data: CMS2, CMS159 and HEDIS DSF-E,
DMS-E, DRR-E. Pure core.

Each measure module decides, per patient, the populations of the published measure
(initial population, denominator, exclusions, exceptions, numerator), its stratum, the
resources that decided it and, for a patient left out of the numerator, a reason a care
manager can act on. Every measure module has ``MEASURE_ID``, ``STRATA`` and
``evaluate(data, period) -> Outcome | None``; a measure with several rates (DSF-E, DMS-E,
DRR-E: ``RATES``) puts each rate's outcome in ``Outcome.rates`` and sums them up in the
outcome itself (:func:`bhi_fhir.measures.common.combine`).
:mod:`bhi_fhir.measures.report` turns the outcomes into FHIR
``MeasureReport``\\ s; :mod:`bhi_fhir.measures.cli` is the ``bhi-fhir measure`` command.
"""
