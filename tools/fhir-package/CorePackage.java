import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.Resource;

/**
 * Lays out the FHIR R4 core package (hl7.fhir.r4.core#4.0.1) as a FHIR package cache folder from
 * the definitions HAPI ships in hapi-fhir-validation-resources-r4 (XML and JSON Bundles on the
 * classpath): one JSON file per resource in OUT/package/, and OUT/package/package.json. SUSHI
 * reads the R4 base definitions from there when the FHIR package registry cannot be reached.
 *
 *   java -cp CLASSPATH CorePackage.java OUT
 */
public class CorePackage {
	private static final String[] BUNDLES = {
		"org/hl7/fhir/r4/model/profile/profiles-types.xml",
		"org/hl7/fhir/r4/model/profile/profiles-resources.xml",
		"org/hl7/fhir/r4/model/profile/profiles-others.xml",
		"org/hl7/fhir/r4/model/extension/extension-definitions.xml",
		"org/hl7/fhir/r4/model/valueset/valuesets.xml",
		"org/hl7/fhir/r4/model/valueset/v3-codesystems.xml",
		"org/hl7/fhir/r4/model/valueset/v2-tables.xml",
		"org/hl7/fhir/r4/model/sp/search-parameters.json",
	};

	public static void main(String[] args) throws Exception {
		Path out = Path.of(args[0], "package");
		Files.createDirectories(out);
		FhirContext ctx = FhirContext.forR4();
		IParser json = ctx.newJsonParser();
		int written = 0;
		for (String name : BUNDLES) {
			try (InputStream in = CorePackage.class.getClassLoader().getResourceAsStream(name)) {
				if (in == null) {
					throw new IllegalStateException("not on the classpath: " + name);
				}
				IParser parser = name.endsWith(".json") ? ctx.newJsonParser() : ctx.newXmlParser();
				Bundle bundle = parser.parseResource(Bundle.class, new InputStreamReader(in, StandardCharsets.UTF_8));
				for (Bundle.BundleEntryComponent entry : bundle.getEntry()) {
					Resource r = entry.getResource();
					if (r == null || !r.hasIdElement()) {
						continue;
					}
					String type = r.fhirType();
					String id = r.getIdElement().getIdPart();
					Files.writeString(out.resolve(type + "-" + id + ".json"), json.encodeResourceToString(r));
					written++;
				}
			}
		}
		Files.writeString(out.resolve("package.json"),
			"{\"name\": \"hl7.fhir.r4.core\", \"version\": \"4.0.1\", \"type\": \"Core\","
				+ " \"fhirVersions\": [\"4.0.1\"], \"description\": \"FHIR R4 core definitions,"
				+ " laid out from HAPI FHIR's hapi-fhir-validation-resources-r4\"}\n");
		System.out.println(written + " resources in " + out);
	}
}
