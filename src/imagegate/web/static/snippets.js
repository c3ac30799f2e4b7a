// "Copy as": the exact request the playground sends, as curl, the imagegate Python SDK and the
// OpenAI Python SDK. The key is never written into a snippet: each reads $IMAGEGATE_API_KEY.

function pyLiteral(value, indent = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  const inner = indent + "    ";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return "[\n" + value.map((item) => inner + pyLiteral(item, inner)).join(",\n") + ",\n" + indent + "]";
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return "{\n" + entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pyLiteral(v, inner)}`).join(",\n") + ",\n" + indent + "}";
}

function shellQuote(text) { return `'${text.replace(/'/g, "'\\''")}'`; }

/** `request`: {path, body, paramsKey?} as sent; returns {curl, python, openai}. */
export function snippets(request) {
  const base = window.location.origin;
  const body = request.body;
  const json = JSON.stringify(body, null, 2);
  const curl = [
    `curl -s ${base}${request.path} \\`,
    `  -H "X-API-Key: $IMAGEGATE_API_KEY" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -H "Idempotency-Key: $(uuidgen)" \\`,
    `  -d ${shellQuote(json)}`,
  ].join("\n");

  let python;
  if (request.path === "/v2/images/midjourney/action") {
    const { action, parentJobId, ...fields } = body;
    python = [
      "import os",
      "",
      "from imagegate.client import Client",
      "",
      `with Client(${JSON.stringify(base)}, api_key=os.environ["IMAGEGATE_API_KEY"]) as client:`,
      "    job = client.images.midjourney_action(",
      `        ${JSON.stringify(action)},`,
      `        ${JSON.stringify(parentJobId)},`,
      `        fields=${pyLiteral(fields, "        ")},`,
      "        wait=True,",
      "    )",
      "    print(job.status, job.images)",
    ].join("\n");
  } else {
    const params = request.paramsKey ? body[request.paramsKey] : undefined;
    python = [
      "import os",
      "",
      "from imagegate.client import Client",
      "",
      `with Client(${JSON.stringify(base)}, api_key=os.environ["IMAGEGATE_API_KEY"]) as client:`,
      "    job = client.images.generate(",
      `        model=${JSON.stringify(body.model)},`,
      `        prompt=${JSON.stringify(body.prompt)},`,
      params ? `        params=${pyLiteral(params, "        ")},` : null,
      "        wait=True,",
      "    )",
      "    print(job.status, job.images)",
    ].filter((line) => line !== null).join("\n");
  }

  const openai = [
    "# imagegate speaks the Apiframe v2 API, not OpenAI's /v1/images: the OpenAI SDK reaches it",
    "# through its generic post(); the key travels as a Bearer token, which imagegate accepts.",
    "import os",
    "import uuid",
    "",
    "import httpx",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${JSON.stringify(base)}, api_key=os.environ["IMAGEGATE_API_KEY"])`,
    "accepted = client.post(",
    `    ${JSON.stringify(request.path)},`,
    `    body=${pyLiteral(body, "    ")},`,
    "    options={\"headers\": {\"Idempotency-Key\": str(uuid.uuid4())}},",
    "    cast_to=httpx.Response,",
    ").json()",
    "job = client.get(f\"/v2/jobs/{accepted['jobId']}\", cast_to=httpx.Response).json()",
    "print(job[\"status\"])",
  ].join("\n");

  return { curl, python, openai };
}
