// External code systems bhi-fhir uses (bhi_fhir/codes.py) and its own canonical base.
Alias: $loinc = http://loinc.org
Alias: $sct = http://snomed.info/sct
Alias: $icd10cm = http://hl7.org/fhir/sid/icd-10-cm
Alias: $cpt = http://www.ama-assn.org/go/cpt
Alias: $hcpcs = https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets
Alias: $ucum = http://unitsofmeasure.org
Alias: $v3-ActCode = http://terminology.hl7.org/CodeSystem/v3-ActCode
Alias: $v3-ParticipationMode = http://terminology.hl7.org/CodeSystem/v3-ParticipationMode
Alias: $v3-ParticipationType = http://terminology.hl7.org/CodeSystem/v3-ParticipationType
Alias: $v3-DataOperation = http://terminology.hl7.org/CodeSystem/v3-DataOperation
Alias: $v3-ObservationInterpretation = http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation
Alias: $observation-category = http://terminology.hl7.org/CodeSystem/observation-category
Alias: $consentscope = http://terminology.hl7.org/CodeSystem/consentscope
Alias: $provenance-participant-type = http://terminology.hl7.org/CodeSystem/provenance-participant-type
Alias: $service-category = http://terminology.hl7.org/CodeSystem/service-category
Alias: $uscore-careplan-category = http://hl7.org/fhir/us/core/CodeSystem/careplan-category
Alias: $bhi-identifier = https://bhi-fhir.dev/fhir/identifier
