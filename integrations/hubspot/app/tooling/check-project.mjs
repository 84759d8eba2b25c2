// Checks the app project offline: HubSpot's own parser (@hubspot/project-parsing-lib) reads
// hsproject.json and every *-hsmeta.json as `hs project upload` does, then each component's
// config is validated against the schemas in hsmeta-schemas.json (written from HubSpot's
// documentation: HubSpot serves its own schemas only to a signed-in account).
// Usage: node check-project.mjs <project dir>; prints a JSON report, exits 1 on any error.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Components } from "@hubspot/project-parsing-lib/constants";
import {
  isKnownPlatformVersion,
  isLegacyProject,
  parseProjectConfig,
} from "@hubspot/project-parsing-lib/projects";
import { mapToUserFacingType } from "@hubspot/project-parsing-lib/transform";
import { translate } from "@hubspot/project-parsing-lib/translate";
import { validateUid } from "@hubspot/project-parsing-lib/uid";
import { createAjvInstance } from "@hubspot/project-parsing-lib/validation";

const here = path.dirname(fileURLToPath(import.meta.url));
const projectDir = path.resolve(process.argv[2] || ".");
const errors = [];
const components = {};

const hsmetaFiles = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : hsmetaFiles(full);
    return entry.name.endsWith("-hsmeta.json") ? [full] : [];
  });

try {
  const config = parseProjectConfig(projectDir);
  const srcDir = path.join(projectDir, config.srcDir);
  if (!isKnownPlatformVersion(config.platformVersion) || isLegacyProject(config.platformVersion)) {
    errors.push(`platformVersion ${config.platformVersion} is not a current platform version`);
  }
  // The parser drops a file it cannot read; name it here rather than miss a component.
  const files = hsmetaFiles(srcDir);
  for (const file of files) {
    try {
      JSON.parse(fs.readFileSync(file, "utf-8"));
    } catch (e) {
      errors.push(`${path.relative(srcDir, file)}: not valid JSON (${e.message})`);
    }
  }
  const { intermediateRepresentation } = await translate(
    { projectSourceDir: srcDir, platformVersion: config.platformVersion },
    { skipValidation: true },
  );
  const nodes = Object.values(intermediateRepresentation.intermediateNodesIndexedByUid);
  if (nodes.length !== files.length) {
    errors.push(`HubSpot's parser read ${nodes.length} of ${files.length} *-hsmeta.json files`);
  }
  const schemas = JSON.parse(fs.readFileSync(path.join(here, "hsmeta-schemas.json"), "utf-8"));
  const ajv = createAjvInstance();
  const seen = {};
  for (const node of nodes) {
    const type = mapToUserFacingType(node.componentType);
    const where = node.metaFilePath;
    components[node.uid] = { type, file: where };
    const uidProblem = validateUid(node.uid);
    if (uidProblem) errors.push(`${where}: ${uidProblem}`);
    const component = Components[type];
    if (!component) {
      errors.push(`${where}: unknown component type ${type}`);
      continue;
    }
    const expected = path.join(
      component.parentComponent ? Components[component.parentComponent].dir : "",
      component.dir,
    );
    if (path.dirname(where) !== expected) {
      errors.push(`${where}: a ${type} component belongs in ${expected}/`);
    }
    seen[type] = (seen[type] || 0) + 1;
    if (component.singularComponent && seen[type] > 1) {
      errors.push(`${where}: a project has at most one ${type} component`);
    }
    const schema = schemas.components[type];
    if (!schema) {
      errors.push(`${where}: no documented schema for ${type} components`);
      continue;
    }
    const validate = ajv.compile({ ...schema, $defs: schemas.$defs });
    if (!validate(node.config)) {
      for (const e of validate.errors) {
        errors.push(`${where}: config${e.instancePath} ${e.message}`);
      }
    }
    if (type === "card" && typeof node.config.entrypoint === "string") {
      if (!fs.existsSync(path.join(srcDir, node.config.entrypoint))) {
        errors.push(`${where}: entrypoint ${node.config.entrypoint} does not exist`);
      }
    }
  }
  for (const type of schemas.required) {
    if (!seen[type]) errors.push(`the project has no ${type} component`);
  }
} catch (e) {
  errors.push(e.message);
}

process.stdout.write(JSON.stringify({ ok: errors.length === 0, errors, components }, null, 2) + "\n");
process.exit(errors.length === 0 ? 0 : 1);
