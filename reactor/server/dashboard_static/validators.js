// Validators (Convex's JSON descriptors) written the way a developer reads them:
// `{ title: string; done?: boolean }`, `Id<"tasks">[]`, `"a" | "b"`.

export function describe(v) {
  if (!v) return "any";
  switch (v.type) {
    case "id":
      return `Id<"${v.tableName}">`;
    case "array":
      return `${describe(v.value)}[]`;
    case "union":
      return v.value.map(describe).join(" | ");
    case "literal":
      return JSON.stringify(v.value);
    case "object":
      return `{ ${Object.entries(v.value)
        .map(([k, f]) => `${k}${f.optional ? "?" : ""}: ${describe(f.fieldType)}`)
        .join("; ")} }`;
    case "record":
      return `Record<${describe(v.keys)}, ${describe(v.values && v.values.fieldType)}>`;
    case "float64":
      return "number";
    case "int64":
      return "bigint";
    default:
      return v.type;
  }
}
