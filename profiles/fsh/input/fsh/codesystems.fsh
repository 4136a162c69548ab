// bhi-fhir's own code systems: concepts no public code system names. Every code bhi-fhir
// writes in these systems is listed (tests/fhir_package checks them against the Python code).

CodeSystem: BHIActivity
Id: bhi-activity
Title: "bhi-fhir activities"
Description: "Codes of the hand-offs (Task, ServiceRequest), the care-management contact (Encounter.type) and the screening items, panels and totals that have no LOINC code (Observation.code) that bhi-fhir writes. SNOMED CT has no concept for these workflow steps of collaborative care."
* ^url = "https://bhi-fhir.dev/fhir/CodeSystem/bhi-activity"
* ^status = #active
* ^caseSensitive = true
* ^content = #complete
* ^experimental = false
// Hand-off Tasks (profiles/activitydefinitions)
* #engage "First care-manager contact"
* #consent "Obtain and document consent"
* #initial-assessment "Care-manager initial assessment"
* #followup-measurement "Follow-up PHQ-9/GAD-7"
* #crisis-assessment "Assess suicide risk today"
* #phq9-followup "Complete a PHQ-9"
* #brief-intervention "Brief alcohol intervention"
* #psychiatric-review "Psychiatric case review"
* #relapse-prevention "Relapse-prevention plan"
* #outreach "Outreach: contact and re-measure"
* #patient-feedback "Patient experience survey"
* #staff-feedback "Staff workflow survey"
// Crisis ServiceRequests
* #suicide-risk-assessment "Same-day suicide risk assessment"
* #crisis-referral "Crisis referral to a higher level of care"
// Care-management time entry (Encounter.type)
* #care-management-contact "Care-management contact"
// Screening items, panels and totals without a LOINC code (bhi_fhir/instruments)
* #phqa-1 "Feeling down, depressed, irritable, or hopeless"
* #phqa-2 "Little interest or pleasure in doing things"
* #phqa-3 "Trouble falling asleep, staying asleep, or sleeping too much"
* #phqa-4 "Poor appetite, weight loss, or overeating"
* #phqa-5 "Feeling tired, or having little energy"
* #phqa-6 "Feeling bad about yourself"
* #phqa-7 "Trouble concentrating on things"
* #phqa-8 "Moving or speaking slowly, or being fidgety or restless"
* #phqa-9 "Thoughts that you would be better off dead, or of hurting yourself"
* #phqa-past-year "Felt depressed or sad most days in the past year"
* #phqa-difficulty "How difficult have these problems made it"
* #phqa-serious-thoughts "Serious thoughts about ending your life in the past month"
* #phqa-attempt "Ever tried to kill yourself or made a suicide attempt"
* #gad2-panel "GAD-2"
* #gad2-total "GAD-2 total score"
* #cssrs-total "C-SSRS screener (recent) total score"
* #epds-1 "Able to laugh and see the funny side of things"
* #epds-2 "Looked forward with enjoyment to things"
* #epds-3 "Blamed myself unnecessarily when things went wrong"
* #epds-4 "Anxious or worried for no good reason"
* #epds-5 "Felt scared or panicky for no very good reason"
* #epds-6 "Things have been getting on top of me"
* #epds-7 "So unhappy that I have had difficulty sleeping"
* #epds-8 "Felt sad or miserable"
* #epds-9 "So unhappy that I have been crying"
* #epds-10 "The thought of harming myself has occurred to me"

CodeSystem: ScreeningSeverity
Id: screening-severity
Title: "bhi-fhir screening severity bands"
Description: "Severity bands of a screening total (PHQ-9, PHQ-A, GAD-7, EPDS) and the C-SSRS screener's triage level, as Observation.interpretation and the C-SSRS risk Observation's value."
* ^url = "https://bhi-fhir.dev/fhir/CodeSystem/screening-severity"
* ^status = #active
* ^caseSensitive = true
* ^content = #complete
* ^experimental = false
* #none-minimal "None minimal" "PHQ-9 / PHQ-A 0-4 (Kroenke 2001)"
* #mild "Mild" "PHQ-9 / PHQ-A 5-9, GAD-7 5-9"
* #moderate "Moderate" "PHQ-9 / PHQ-A 10-14, GAD-7 10-14; C-SSRS screener moderate risk"
* #moderately-severe "Moderately severe" "PHQ-9 / PHQ-A 15-19"
* #severe "Severe" "PHQ-9 / PHQ-A 20-27, GAD-7 15-21"
* #minimal "Minimal" "GAD-7 0-4 (Spitzer 2006)"
* #below-threshold "Below threshold" "EPDS 0-9"
* #possible-depression "Possible depression" "EPDS 10-12"
* #probable-depression "Probable depression" "EPDS 13-30"
* #high "High" "C-SSRS screener high risk (Columbia triage guidelines)"
* #low "Low" "C-SSRS screener low risk (Columbia triage guidelines)"

CodeSystem: BHIProgram
Id: bhi-program
Title: "bhi-fhir programs"
Description: "The behavioral health integration program a care-management minute or a billing month belongs to (CMS MLN909432)."
* ^url = "https://bhi-fhir.dev/fhir/CodeSystem/bhi-program"
* ^status = #active
* ^caseSensitive = true
* ^content = #complete
* ^experimental = false
* #cocm "Psychiatric collaborative care (CoCM)"
* #bhi "General behavioral health integration"

CodeSystem: BHIRule
Id: bhi-rule
Title: "bhi-fhir rules"
Description: "The rule (the protocol's action id, profiles/plandefinitions/bhi-protocol.json) a write by bhi-fhir carries out, as Provenance.reason."
* ^url = "https://bhi-fhir.dev/fhir/CodeSystem/bhi-rule"
* ^status = #active
* ^caseSensitive = true
* ^content = #complete
* ^experimental = false
* #crisis-assessment "Crisis: same-day suicide risk assessment"
* #crisis-assessment.request "ServiceRequest for the assessment"
* #crisis-assessment.task "Task to the clinician on duty"
* #crisis-referral "Crisis: referral to the mapped level of care"
* #engage "Engage: first care-manager contact"
* #consent "Consent: obtain and document"
* #enroll "Enroll: BHI care plan, care team, initial assessment, follow-up measurement"
* #enroll.careplan "BHI CarePlan"
* #enroll.initial-assessment "Initial assessment Task"
* #enroll.followup-measurement "Follow-up measurement Task"
* #rescreen "Re-screen before enrollment: the positive screen is older than the look-back"
* #outreach "Outreach: overdue contact or measurement"
* #psychiatric-review "Psychiatric review: not improving by the review window"
* #relapse-prevention "Relapse prevention: in remission"
* #phq9-followup "PHQ-9 after a positive PHQ-2"
* #brief-intervention "Brief intervention after a positive AUDIT-C"
* #patient-feedback "Patient experience survey due"
* #staff-feedback "Staff workflow survey due"
* #screening "Screening Observations from a scored response"
* #app "A clinician's action in the bhi-fhir app"


CodeSystem: FeedbackAnswer
Id: feedback-answer
Title: "bhi-fhir feedback survey answers"
Description: "Answer options of the patient experience and staff workflow surveys (profiles/questionnaires/feedback), the practice's own instruments; each Questionnaire gives an option's scale point (ordinalValue) where its answers are ordered."
* ^url = "https://bhi-fhir.dev/fhir/CodeSystem/feedback-answer"
* ^status = #active
* ^caseSensitive = true
* ^content = #complete
* ^experimental = false
* #never "Never"
* #sometimes "Sometimes"
* #usually "Usually"
* #always "Always"
* #no "No"
* #yes-somewhat "Yes, somewhat"
* #yes-definitely "Yes, definitely"
* #not-sure "Not sure"
* #yes "Yes"
* #much-worse "Much worse"
* #a-little-worse "A little worse"
* #about-the-same "About the same"
* #a-little-better "A little better"
* #much-better "Much better"
* #poor "Poor"
* #fair "Fair"
* #good "Good"
* #very-good "Very good"
* #excellent "Excellent"
* #care-manager "Behavioral health care manager"
* #primary-care "Primary care clinician (billing practitioner or PCP)"
* #psychiatric-consultant "Psychiatric consultant"
* #clinical-staff "Other clinical staff (nurse, medical assistant)"
* #administrative "Front desk, scheduling or billing staff"
* #strongly-disagree "Strongly disagree"
* #disagree "Disagree"
* #neutral "Neither agree nor disagree"
* #agree "Agree"
* #strongly-agree "Strongly agree"
