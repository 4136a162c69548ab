"""Where each test row's expected value comes from (cited per row)."""

S41 = "CoCM time ranges (Regence/BCBSND CoCM policies; https://micmt-cares.org/collaborative-care-cocm)"
S41_G2214 = "G2214 from 16 minutes (https://support.mirah.com/article/663-collaborative-care-minute-targets)"
S42 = "CPT time midpoint rule (a unit counts once its midpoint is passed)"
S72 = "CPT time midpoint rule, BCBSND CoCM policy (99494 at 86 initial / 76 subsequent)"
S74 = "+99494 payer caps (NC Medicaid 4/month; a vendor 2)"
S41_99484 = "CPT 99484 descriptor: at least 20 minutes"
S41_G0323 = (
    "G0323 (https://www.hipaaspace.com/medical_billing/coding/"
    "healthcare.common.procedure.coding.system/g0323.xml)"
)
S43_SAME_MONTH = "99484/G0323 not with CoCM codes in the same month (vendor billing guides)"
S43_FQHC = (
    "RHC/FQHC timeline (https://integrationacademy.ahrq.gov/news-and-events/"
    "news/new-medicare-billing-practices-collaborative-care-take-effect)"
)
S41_APCM = (
    "G0568/G0569/G0570 "
    "(https://www.fairpath.ai/resources/apcm-behavioral-health-add-on-2026; "
    "https://www.gillcompliance.com/blog/2025/8/10/)"
)
S22_EPISODE = (
    "Episode of care (https://medicaid.ncdhhs.gov/blog/2025/09/17/"
    "updated-coverage-psychiatric-collaborative-care-management-sept-17-2025)"
)
S42_EXCLUDE = "Excluded time (https://publications.aap.org/aapnews/news/12223; NCTracks)"
S43_CONSENT = "Consent (https://micmt-cares.org/general-behavioral-health)"
S43_VISIT = (
    "Initiating visit (https://chartspan.com/blog/behavioral-health-cpt-codes)"
)
S43_TEAM = "Team (https://www.ngsmedicare.com/web/ngs/mental-health?selectedArticleId=3421653)"
S43_MONTH = "Calendar-month service period (CMS MLN909432)"
LEDGER_RULES = "practice choice: the time ledger's counting rules (bhi_fhir.billing.ledger)"
S6_BHCM = (
    "CoCM minutes are BHCM time (CPT 99492/99493/99494, G2214 descriptors; "
    "CMS MLN909432 Behavioral Health Integration Services)"
)
S6_GENERAL_BHI = (
    "(99484/G0323: clinical staff time directed by the billing practitioner; "
    "CMS MLN909432) and G0323 (the clinical psychologist/CSW/MHC/MFT's own time)"
)
CMS_FAQ_OWN_TIME = (
    "CMS FAQ on care-management clinical staff time, 18 Jan 2017 (billing practitioner's own "
    "time may count as clinical staff time; copy at https://remingtonreport.com/"
    "intelligence-resources/partnership-development/22-key-facts-about-physician-ccm-billing)"
)
S6_DEATH = (
    "No services after death (Medicare does not pay for services dated "
    "after the date of death; CMS claims processing edits, HHS-OIG post-death audits)"
)
S22_EPISODE_END = (
    "Episode of care (ends when goals are met or the patient is referred "
    "on; https://medicaid.ncdhhs.gov/blog/2025/09/17/updated-coverage-psychiatric-"
    "collaborative-care-management-sept-17-2025)"
)
CPT_ONE_PERSON = (
    "CPT care-management time rules: staff meeting together count one person's time (a "
    "practice reading of the CPT time rules; no public source found yet)"
)
