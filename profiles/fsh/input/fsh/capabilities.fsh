// What bhi-fhir's two clients need of an EHR's FHIR server (kind requirements, mode client).
// Every search parameter they use is a base FHIR R4 one: the package defines no SearchParameter.

Alias: $restful-security-service = http://terminology.hl7.org/CodeSystem/restful-security-service
Alias: $pkg = https://bhi-fhir.dev/fhir/StructureDefinition

RuleSet: Search(name, type)
* searchParam[+].name = "{name}"
* searchParam[=].type = #{type}

RuleSet: Interactions3(a, b, c)
* interaction[+].code = #{a}
* interaction[+].code = #{b}
* interaction[+].code = #{c}

Instance: bhi-fhir-app
InstanceOf: CapabilityStatement
Usage: #definition
Title: "bhi-fhir app (SMART on FHIR client)"
Description: "The bhi-fhir clinician app and patient portal (smart_app), launched with SMART App Launch: the patient views (one search per resource type, by patient), the registry, the plan preview and apply, and the care team's writes (time entries, Task status, consent, patient-entered questionnaires), each with a Provenance, in transactions."
* url = "https://bhi-fhir.dev/fhir/CapabilityStatement/bhi-fhir-app"
* name = "BHIFHIRApp"
* status = #active
* experimental = false
* date = "2026-11-30"
* publisher = "bhi-fhir"
* kind = #requirements
* fhirVersion = #4.0.1
* format[+] = #json
* implementationGuide = "https://bhi-fhir.dev/fhir/ImplementationGuide/bhi.fhir"
* rest[+].mode = #client
* rest[=].documentation = "SMART App Launch (EHR launch and standalone); the writes go as transaction Bundles (conditional create on the business identifier or the Provenance's meta.tag, versioned update with If-Match)."
* rest[=].security.service = $restful-security-service#SMART-on-FHIR
* rest[=].interaction[+].code = #transaction
* rest[=].resource[+].type = #Patient
* rest[=].resource[=].interaction[+].code = #read
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(_id, token)
* rest[=].resource[+].type = #QuestionnaireResponse
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Observation
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-screening-panel"
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[=] insert Search(category, token)
* rest[=].resource[+].type = #DiagnosticReport
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[=] insert Search(code, token)
* rest[=].resource[+].type = #CarePlan
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-careplan"
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Task
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-task"
* rest[=].resource[=].interaction[+].code = #read
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=] insert Search(patient, reference)
* rest[=].resource[+].type = #ServiceRequest
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-crisis-servicerequest"
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Encounter
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-care-management-contact"
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Consent
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-consent"
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=] insert Search(patient, reference)
* rest[=].resource[+].type = #Procedure
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Provenance
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-provenance"
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=].conditionalCreate = true

Instance: bhi-fhir-sync
InstanceOf: CapabilityStatement
Usage: #definition
Title: "bhi-fhir sync (SMART Backend Services client)"
Description: "bhi-fhir sync (and bill --write-back): reads the QuestionnaireResponses changed since its watermark with their patients and Questionnaires, each patient's context, and writes the screening Observations and the protocol's CarePlans, Tasks and ServiceRequests (billing: the month's Encounter) with a Provenance each, in transaction Bundles."
* url = "https://bhi-fhir.dev/fhir/CapabilityStatement/bhi-fhir-sync"
* name = "BHIFHIRSync"
* status = #active
* experimental = false
* date = "2026-11-30"
* publisher = "bhi-fhir"
* kind = #requirements
* fhirVersion = #4.0.1
* format[+] = #json
* implementationGuide = "https://bhi-fhir.dev/fhir/ImplementationGuide/bhi.fhir"
* rest[+].mode = #client
* rest[=].documentation = "SMART Backend Services (client credentials with a signed JWT) or a bearer token; transactions with conditional creates (ifNoneExist on _tag or identifier) and versioned updates (If-Match); _include is used only when the server's CapabilityStatement lists it (searchInclude), otherwise the included resources are read in batches. Optional: rest-hook Subscriptions (sync watch) and Bulk Data $export (sync --bulk)."
* rest[=].security.service = $restful-security-service#SMART-on-FHIR
* rest[=].interaction[+].code = #transaction
* rest[=].interaction[+].code = #batch
* rest[=].resource[+].type = #QuestionnaireResponse
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=].searchInclude[+] = "QuestionnaireResponse:subject"
* rest[=].resource[=].searchInclude[+] = "QuestionnaireResponse:questionnaire"
* rest[=].resource[=] insert Search(_lastUpdated, date)
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Patient
* rest[=].resource[=].interaction[+].code = #read
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(_id, token)
* rest[=].resource[+].type = #Questionnaire
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(url, uri)
* rest[=].resource[+].type = #Observation
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-screening-item"
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-screening-total"
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-screening-panel"
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=].conditionalCreate = true
* rest[=].resource[=] insert Search(_lastUpdated, date)
* rest[=].resource[=] insert Search(category, token)
* rest[=].resource[=] insert Search(code, token)
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #CarePlan
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-careplan"
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=].conditionalCreate = true
* rest[=].resource[=].versioning = #versioned-update
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Task
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-task"
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=].conditionalCreate = true
* rest[=].resource[=].versioning = #versioned-update
* rest[=].resource[=] insert Search(patient, reference)
* rest[=].resource[+].type = #ServiceRequest
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-crisis-servicerequest"
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=].conditionalCreate = true
* rest[=].resource[=].versioning = #versioned-update
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[+].type = #Encounter
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-care-management-contact"
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-billing-encounter"
* rest[=].resource[=] insert Interactions3(search-type, create, update)
* rest[=].resource[=].conditionalCreate = true
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[=] insert Search(type, token)
* rest[=].resource[+].type = #Consent
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(patient, reference)
* rest[=].resource[+].type = #Procedure
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=] insert Search(subject, reference)
* rest[=].resource[=] insert Search(code, token)
* rest[=].resource[+].type = #Provenance
* rest[=].resource[=].supportedProfile[+] = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-provenance"
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=].interaction[+].code = #search-type
* rest[=].resource[=].conditionalCreate = true
* rest[=].resource[=] insert Search(_tag, token)
* rest[=].resource[+].type = #Subscription
* rest[=].resource[=].interaction[+].code = #create
* rest[=].resource[=].interaction[+].code = #search-type
