// Profiles of what bhi-fhir writes (and the care-management contacts it reads). They derive
// from base FHIR R4: US Core is not loadable where this package is built and validated; each
// one follows the US Core profile named in its description where one exists.

RuleSet: BHIIdentifier
// The deterministic business identifier a re-run finds the resource by (bhi_fhir/codes.py BHI_IDENTIFIER).
* identifier 1..* MS
* identifier.system 1..1
* identifier.value 1..1

// ---------------------------------------------------------------- CarePlan

Profile: BHICarePlan
Parent: CarePlan
Id: bhi-careplan
Title: "BHI CarePlan"
Description: "The collaborative-care plan bhi-fhir writes on enrollment: categories assess-plan (as US Core CarePlan) and SNOMED CT 718347000 Mental health care plan, the care team contained, the plan's Tasks as activities."
* ^status = #active
* ^experimental = false
* insert BHIIdentifier
* text 1..1 MS
* status MS
* intent = #plan
* category 2..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains assessPlan 1..1 MS and mentalHealthCarePlan 1..1 MS
* category[assessPlan] = $uscore-careplan-category#assess-plan
* category[mentalHealthCarePlan] = $sct#718347000
* title 1..1 MS
* description 1..1 MS
* subject only Reference(Patient)
* subject MS
* period 1..1 MS
* period.start 1..1
* created 1..1 MS
* author 1..1 MS
* author only Reference(Practitioner or PractitionerRole)
* contributor only Reference(Practitioner or PractitionerRole)
* careTeam MS
* activity MS
* activity.reference only Reference(Task or ServiceRequest)

// ---------------------------------------------------------------- hand-off Tasks

Profile: BHITask
Parent: Task
Id: bhi-task
Title: "BHI hand-off Task"
Description: "A hand-off bhi-fhir gives the care team (code from bhi-task-code): who owns it, by when, and the screen or plan it follows from. Each kind has its own profile below, fixing the code."
* ^status = #active
* ^experimental = false
* insert BHIIdentifier
* text 1..1 MS
* status MS
* intent = #order
* code 1..1 MS
* code from BHITaskCodes (required)
* description 1..1 MS
* for MS
* for only Reference(Patient)
* authoredOn MS
* priority 1..1 MS
* owner MS
* owner only Reference(Practitioner or PractitionerRole or CareTeam or Organization)
* restriction.period.end MS
* reasonReference MS

RuleSet: TaskKind(code)
// A hand-off about one patient.
* ^status = #active
* ^experimental = false
* code = BHIActivity#{code}
* for 1..1

Profile: BHIEngageTask
Parent: BHITask
Id: bhi-task-engage
Title: "BHI Task: first care-manager contact"
Description: "Engage: contact the patient after a positive screen."
* insert TaskKind(engage)

Profile: BHIConsentTask
Parent: BHITask
Id: bhi-task-consent
Title: "BHI Task: obtain consent"
Description: "Obtain and document the patient's consent to collaborative care (CMS MLN909432)."
* insert TaskKind(consent)

Profile: BHIInitialAssessmentTask
Parent: BHITask
Id: bhi-task-initial-assessment
Title: "BHI Task: initial assessment"
Description: "The care manager's initial assessment on enrollment."
* insert TaskKind(initial-assessment)

Profile: BHIFollowupMeasurementTask
Parent: BHITask
Id: bhi-task-followup-measurement
Title: "BHI Task: follow-up measurement"
Description: "Re-measure with PHQ-9/GAD-7 (measurement-based care); also the re-screen before enrollment."
* insert TaskKind(followup-measurement)

Profile: BHICrisisAssessmentTask
Parent: BHITask
Id: bhi-task-crisis-assessment
Title: "BHI Task: assess suicide risk today"
Description: "The clinician on duty assesses suicide risk today; focus is the same-day ServiceRequest."
* insert TaskKind(crisis-assessment)
* focus 1..1 MS
* focus only Reference(ServiceRequest)

Profile: BHIPhq9FollowupTask
Parent: BHITask
Id: bhi-task-phq9-followup
Title: "BHI Task: complete a PHQ-9"
Description: "A PHQ-9 after a positive PHQ-2."
* insert TaskKind(phq9-followup)

Profile: BHIBriefInterventionTask
Parent: BHITask
Id: bhi-task-brief-intervention
Title: "BHI Task: brief alcohol intervention"
Description: "A brief intervention after a positive AUDIT-C."
* insert TaskKind(brief-intervention)

Profile: BHIPsychiatricReviewTask
Parent: BHITask
Id: bhi-task-psychiatric-review
Title: "BHI Task: psychiatric case review"
Description: "The psychiatric consultant reviews a patient not improving by the review window."
* insert TaskKind(psychiatric-review)

Profile: BHIRelapsePreventionTask
Parent: BHITask
Id: bhi-task-relapse-prevention
Title: "BHI Task: relapse-prevention plan"
Description: "A relapse-prevention plan for a patient in remission."
* insert TaskKind(relapse-prevention)

Profile: BHIOutreachTask
Parent: BHITask
Id: bhi-task-outreach
Title: "BHI Task: outreach"
Description: "Contact and re-measure a patient whose contact or measurement is overdue."
* insert TaskKind(outreach)

Profile: BHIPatientFeedbackTask
Parent: BHITask
Id: bhi-task-patient-feedback
Title: "BHI Task: patient experience survey"
Description: "Offer the patient experience survey (weeks after enrollment, at completion of care), based on the BHI CarePlan."
* insert TaskKind(patient-feedback)
* basedOn 1..* MS
* basedOn only Reference(CarePlan)
* input 1..* MS
* input.value[x] only canonical

Profile: BHIStaffFeedbackTask
Parent: BHITask
Id: bhi-task-staff-feedback
Title: "BHI Task: staff workflow survey"
Description: "A practice-level Task (no patient): a staff member answers the staff workflow survey for a period."
* ^status = #active
* ^experimental = false
* code = BHIActivity#staff-feedback
* for 0..0
* owner 1..1
* input 1..* MS
* input.value[x] only canonical

// ---------------------------------------------------------------- crisis ServiceRequests

Profile: BHICrisisServiceRequest
Parent: ServiceRequest
Id: bhi-crisis-servicerequest
Title: "BHI crisis ServiceRequest"
Description: "A crisis request bhi-fhir writes from a screen (PHQ-9 item 9, EPDS item 10, C-SSRS): the same-day suicide risk assessment or the referral to a higher level of care."
* ^status = #active
* ^experimental = false
* insert BHIIdentifier
* text 1..1 MS
* status MS
* intent = #order
* code 1..1 MS
* code from BHICrisisRequestCodes (required)
* subject only Reference(Patient)
* subject MS
* priority 1..1 MS
* authoredOn 1..1 MS
* requester 1..1 MS
* requester only Reference(Practitioner or PractitionerRole or Organization)
* performer 1..* MS
* performer only Reference(Practitioner or PractitionerRole or Organization or HealthcareService)
* supportingInfo 1..* MS
* note MS

Profile: BHISuicideRiskAssessmentRequest
Parent: BHICrisisServiceRequest
Id: bhi-suicide-risk-assessment
Title: "BHI same-day suicide risk assessment"
Description: "Same-day suicide risk assessment (SAFE-T) and safety plan (Stanley & Brown 2012), to the clinician on duty."
* ^status = #active
* ^experimental = false
* code = BHIActivity#suicide-risk-assessment

Profile: BHICrisisReferral
Parent: BHICrisisServiceRequest
Id: bhi-crisis-referral
Title: "BHI crisis referral"
Description: "Referral to the level of care the practice plan maps a C-SSRS risk to (SAMHSA National Guidelines for Behavioral Health Crisis Care 2020)."
* ^status = #active
* ^experimental = false
* code = BHIActivity#crisis-referral

// ---------------------------------------------------------------- Encounters

Profile: BHICareManagementContact
Parent: Encounter
Id: bhi-care-management-contact
Title: "BHI care-management contact (time entry)"
Description: "A care-management contact: the minutes the billing ledger counts and the workflow counts as a care-manager contact. The app writes it with its contact mode and program; bhi-fhir reads any finished Encounter typed care-management-contact."
* ^status = #active
* ^experimental = false
* extension contains ContactMode named contactMode 0..1 MS and BHIProgramExtension named program 0..1 MS
* identifier MS
* status MS
* class MS
* type 1..* MS
* type ^slicing.discriminator.type = #pattern
* type ^slicing.discriminator.path = "$this"
* type ^slicing.rules = #open
* type contains careManagementContact 1..1 MS
* type[careManagementContact] = BHIActivity#care-management-contact
* subject 1..1 MS
* subject only Reference(Patient)
* participant 1..* MS
* participant.individual 1..1 MS
* period 1..1 MS
* period.start 1..1
* length 1..1 MS
* length.system = $ucum
* length.code = #min

Profile: BHIBillingEncounter
Parent: Encounter
Id: bhi-billing-encounter
Title: "BHI billing Encounter"
Description: "A patient's billable month of BHI or CoCM care management (CMS MLN909432): the CPT/HCPCS codes with their units as types, the minutes as length, the billing practitioner and care managers as participants."
* ^status = #active
* ^experimental = false
* extension contains BHIProgramExtension named program 1..1 MS
* insert BHIIdentifier
* text 1..1 MS
* status = #finished
* class MS
* type 1..* MS
* type.extension contains BilledUnits named billedUnits 1..1 MS
* type.coding 1..* MS
* serviceType 1..1 MS
* subject 1..1 MS
* subject only Reference(Patient)
* participant 1..* MS
* participant.individual 1..1 MS
* period 1..1 MS
* period.start 1..1
* period.end 1..1
* length 1..1 MS
* length.system = $ucum
* length.code = #min
* reasonCode MS

// ---------------------------------------------------------------- screening Observations

Profile: BHIScreeningObservation
Parent: Observation
Id: bhi-screening-observation
Title: "BHI screening Observation"
Description: "An Observation bhi-fhir derives from a scored QuestionnaireResponse (category survey, as US Core Observation Screening Assessment): an item, the total or the panel, each with its own profile below."
* ^status = #active
* ^experimental = false
* insert BHIIdentifier
* status MS
* category 1..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains survey 1..1 MS
* category[survey] = $observation-category#survey
* code MS
* subject 1..1 MS
* subject only Reference(Patient)
* effective[x] only dateTime
* effective[x] MS
* issued MS
* derivedFrom 1..* MS
* derivedFrom only Reference(QuestionnaireResponse)

Profile: BHIScreeningItem
Parent: BHIScreeningObservation
Id: bhi-screening-item
Title: "BHI screening item"
Description: "One answered item (its LOINC answer as valueCodeableConcept, or a number), or the C-SSRS risk level (screening-severity)."
* ^status = #active
* ^experimental = false
* value[x] 1..1 MS
* value[x] only CodeableConcept or integer
* hasMember 0..0

Profile: BHIScreeningTotal
Parent: BHIScreeningObservation
Id: bhi-screening-total
Title: "BHI screening total"
Description: "The instrument's total score, with positive/negative and the severity band (screening-severity) as interpretation."
* ^status = #active
* ^experimental = false
* value[x] 1..1 MS
* value[x] only Quantity
* valueQuantity.system = $ucum
* valueQuantity.code = #{score}
* interpretation MS
* interpretation from ScreeningInterpretations (extensible)
* hasMember 0..0

Profile: BHIScreeningPanel
Parent: BHIScreeningObservation
Id: bhi-screening-panel
Title: "BHI screening panel"
Description: "The instrument's panel (its LOINC panel code) grouping the item and total Observations."
* ^status = #active
* ^experimental = false
* value[x] 0..0
* interpretation from ScreeningInterpretations (extensible)
* hasMember 1..* MS
* hasMember only Reference(Observation)

// ---------------------------------------------------------------- Consent and Provenance

Profile: BHIConsent
Parent: Consent
Id: bhi-consent
Title: "BHI consent"
Description: "The patient's consent to collaborative care (CMS MLN909432: verbal or written, before the first billed month), as the app records it: LOINC 59284-0 Patient Consent, opt-in."
* ^status = #active
* ^experimental = false
* insert BHIIdentifier
* status MS
* scope MS
* category 1..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains patientConsent 1..1 MS
* category[patientConsent] = $loinc#59284-0
* patient 1..1 MS
* dateTime 1..1 MS
* performer MS
* policyRule 1..1 MS
* policyRule from BHIConsentPolicies (extensible)
* policyRule = $v3-ActCode#OPTIN

Profile: BHIProvenance
Parent: Provenance
Id: bhi-provenance
Title: "BHI Provenance"
Description: "The record of a write by bhi-fhir (sync, billing, the app): what was written, from which resources, by which rule, with its idempotency key as meta.tag."
* ^status = #active
* ^experimental = false
* meta.tag 1..* MS
* target MS
* recorded MS
* activity 1..1 MS
* reason MS
* reason from BHIRuleCodes (extensible)
* agent MS
* entity MS
