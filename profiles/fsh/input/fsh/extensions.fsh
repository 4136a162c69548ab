// Extensions bhi-fhir writes (Encounter, MeasureReport) and reads (its own PlanDefinition and
// Questionnaires in profiles/).

Extension: ContactMode
Id: contact-mode
Title: "Contact mode"
Description: "How a care-management contact took place (in person, phone, video): the ledger counts the minutes of each mode."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/contact-mode"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "Encounter"
* value[x] only Coding
* valueCoding from ContactModes (required)

Extension: BHIProgramExtension
Id: bhi-program
Title: "BHI program"
Description: "The behavioral health integration program (CoCM or general BHI) a care-management contact or a billing month counts towards (CMS MLN909432)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/bhi-program"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "Encounter"
* value[x] only code
* valueCode from BHIProgramCodes (required)

Extension: BilledUnits
Id: billed-units
Title: "Billed units"
Description: "How many units of the CPT/HCPCS code in this Encounter.type a billing month claims (an add-on code may be billed more than once)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/billed-units"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "Encounter.type"
* value[x] only positiveInt

Extension: CareGapReason
Id: care-gap-reason
Title: "Care gap reason"
Description: "Why a patient is in a measure population's numerator gap, in words a care manager can act on (MeasureReport from bhi-fhir's measures)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/care-gap-reason"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "MeasureReport.group.population"
* value[x] only string

Extension: ForEach
Id: for-each
Title: "For each"
Description: "A protocol action runs once per item of this FHIRPath expression's result (profiles/plandefinitions/bhi-protocol.json)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/for-each"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "PlanDefinition.action"
* value[x] only Expression

Extension: IdentifierKey
Id: identifier-key
Title: "Identifier key"
Description: "The expression whose value, with the action id, makes the deterministic business identifier of what a protocol action creates (so a re-run finds it instead of writing it twice)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/identifier-key"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "PlanDefinition.action"
* value[x] only Expression

Extension: Sources
Id: sources
Title: "Sources"
Description: "The expression naming the resources a protocol action's output was derived from (Provenance.entity of the write)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/sources"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "PlanDefinition.action"
* value[x] only Expression

Extension: Reason
Id: reason
Title: "Reason"
Description: "The expression giving the human-readable reason of a protocol action's output (a ServiceRequest's note, the plan preview)."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/reason"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "PlanDefinition.action"
* value[x] only Expression

Extension: ItemPurpose
Id: item-purpose
Title: "Item purpose"
Description: "What a question of bhi-fhir's staff and patient-experience questionnaires is asked for."
* ^url = "https://bhi-fhir.dev/fhir/StructureDefinition/item-purpose"
* ^status = #active
* ^experimental = false
* ^context[0].type = #element
* ^context[0].expression = "Questionnaire.item"
* value[x] only string
