"""Where each test row's expected value comes from (cited per row)."""

S41 = "bhi-domain.md §4.1 (Regence/BCBSND CoCM policies; https://micmt-cares.org/collaborative-care-cocm)"
S41_G2214 = "bhi-domain.md §4.1 G2214 (https://support.mirah.com/article/663-collaborative-care-minute-targets)"
S42 = "bhi-domain.md §4.2 (CPT midpoint rule table)"
S72 = "bhi-domain.md §7.2 (99494 at 86 initial / 76 subsequent)"
S74 = "bhi-domain.md §4.1 +99494 notes, §7.4 (NC Medicaid 4/month; a vendor 2)"
S41_99484 = "bhi-domain.md §4.1 99484, §4.2 'at least', §7.1"
S41_G0323 = (
    "bhi-domain.md §4.1 G0323 (https://www.hipaaspace.com/medical_billing/coding/"
    "healthcare.common.procedure.coding.system/g0323.xml)"
)
S43_SAME_MONTH = "bhi-domain.md §4.3 Same month (99484/G0323 not with CoCM codes)"
S43_FQHC = (
    "bhi-domain.md §4.3 RHC/FQHC timeline (https://integrationacademy.ahrq.gov/news-and-events/"
    "news/new-medicare-billing-practices-collaborative-care-take-effect)"
)
S41_APCM = (
    "bhi-domain.md §4.1 G0568/G0569/G0570, §7.8 "
    "(https://www.fairpath.ai/resources/apcm-behavioral-health-add-on-2026; "
    "https://www.gillcompliance.com/blog/2025/8/10/)"
)
S22_EPISODE = (
    "bhi-domain.md §2.2 Episode of care, §7.3 (https://medicaid.ncdhhs.gov/blog/2025/09/17/"
    "updated-coverage-psychiatric-collaborative-care-management-sept-17-2025)"
)
S42_EXCLUDE = "bhi-domain.md §4.2 (https://publications.aap.org/aapnews/news/12223; NCTracks)"
S43_CONSENT = "bhi-domain.md §4.3 Consent (https://micmt-cares.org/general-behavioral-health)"
S43_VISIT = (
    "bhi-domain.md §4.3 Initiating visit (https://chartspan.com/blog/behavioral-health-cpt-codes)"
)
S43_TEAM = "bhi-domain.md §4.3 Team (https://www.ngsmedicare.com/web/ngs/mental-health?selectedArticleId=3421653)"
S43_MONTH = "bhi-domain.md §4.3 Calendar-month service period"
ISSUE6 = "issue 6 Time ledger counting rules"
S6_BHCM = (
    "bhi-domain.md §6 'CoCM minutes are BHCM time' (CPT 99492/99493/99494, G2214 descriptors; "
    "CMS MLN909432 Behavioral Health Integration Services)"
)
S6_GENERAL_BHI = (
    "bhi-domain.md §6 (99484/G0323: clinical staff time directed by the billing practitioner; "
    "CMS MLN909432) and §4.1 G0323 (the clinical psychologist/CSW/MHC/MFT's own time)"
)
CMS_FAQ_OWN_TIME = (
    "CMS FAQ on care-management clinical staff time, 18 Jan 2017 (billing practitioner's own "
    "time may count as clinical staff time; copy at https://remingtonreport.com/"
    "intelligence-resources/partnership-development/22-key-facts-about-physician-ccm-billing)"
)
S6_DEATH = (
    "bhi-domain.md §6 'No services after death' (Medicare does not pay for services dated "
    "after the date of death; CMS claims processing edits, HHS-OIG post-death audits)"
)
S22_EPISODE_END = (
    "bhi-domain.md §2.2 Episode of care (ends when goals are met or the patient is referred "
    "on; https://medicaid.ncdhhs.gov/blog/2025/09/17/updated-coverage-psychiatric-"
    "collaborative-care-management-sept-17-2025)"
)
CPT_ONE_PERSON = (
    "CPT care-management time rules: staff meeting together count one person's time (as stated "
    "in the billing brief; not yet in bhi-domain.md)"
)
