ValueSet: BHITaskCodes
Id: bhi-task-code
Title: "bhi-fhir hand-off Task codes"
Description: "The codes of the Tasks bhi-fhir hands to the care team."
* ^status = #active
* ^experimental = false
* BHIActivity#engage
* BHIActivity#consent
* BHIActivity#initial-assessment
* BHIActivity#followup-measurement
* BHIActivity#crisis-assessment
* BHIActivity#phq9-followup
* BHIActivity#brief-intervention
* BHIActivity#psychiatric-review
* BHIActivity#relapse-prevention
* BHIActivity#outreach
* BHIActivity#patient-feedback
* BHIActivity#staff-feedback

ValueSet: BHICrisisRequestCodes
Id: bhi-crisis-request-code
Title: "bhi-fhir crisis ServiceRequest codes"
Description: "The codes of the crisis ServiceRequests bhi-fhir writes."
* ^status = #active
* ^experimental = false
* BHIActivity#suicide-risk-assessment
* BHIActivity#crisis-referral

ValueSet: BHIActivityCodes
Id: bhi-activity
Title: "bhi-fhir activities (all)"
Description: "Every code of the bhi-activity code system."
* ^status = #active
* ^experimental = false
* include codes from system BHIActivity

ValueSet: ScreeningSeverityCodes
Id: screening-severity
Title: "bhi-fhir screening severity bands"
Description: "Every code of the screening-severity code system."
* ^status = #active
* ^experimental = false
* include codes from system ScreeningSeverity

ValueSet: BHIProgramCodes
Id: bhi-program
Title: "bhi-fhir programs"
Description: "Every code of the bhi-program code system."
* ^status = #active
* ^experimental = false
* include codes from system BHIProgram

ValueSet: BHIRuleCodes
Id: bhi-rule
Title: "bhi-fhir rules"
Description: "Every code of the bhi-rule code system."
* ^status = #active
* ^experimental = false
* include codes from system BHIRule

ValueSet: ContactModes
Id: contact-mode
Title: "Care-management contact modes"
Description: "How a care-management contact took place: in person, by phone or by video (HL7 v3 ParticipationMode)."
* ^status = #active
* ^experimental = false
* $v3-ParticipationMode#FACE
* $v3-ParticipationMode#PHONE
* $v3-ParticipationMode#VIDEOCONF

ValueSet: ScreeningInterpretations
Id: screening-interpretation
Title: "Screening total interpretations"
Description: "A screening total's interpretation: positive or negative (HL7 v3 ObservationInterpretation) and its severity band (screening-severity)."
* ^status = #active
* ^experimental = false
* $v3-ObservationInterpretation#POS
* $v3-ObservationInterpretation#NEG
* include codes from system ScreeningSeverity

ValueSet: BHIConsentPolicies
Id: bhi-consent-policy
Title: "bhi-fhir consent policy rule"
Description: "The policy rule of a BHI consent: opt-in (HL7 v3 ActCode OPTIN), as the app records it. FHIR R4's consent-policy value set (the consentpolicycodes system) names specific regulations and forms, none of them a plain opt-in to a program of care."
* ^status = #active
* ^experimental = false
* $v3-ActCode#OPTIN
