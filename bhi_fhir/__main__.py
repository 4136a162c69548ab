from bhi_fhir.cli import main

main()
