-- wrk script: GET the job path in $JOB with the key in $KEY.
wrk.method = "GET"
wrk.path = os.getenv("JOB") or "/v2/jobs/none"
wrk.headers["X-API-Key"] = os.getenv("KEY") or "none"
