-- wrk script: POST a generate body with the key in $KEY; IDEM=1 adds a unique Idempotency-Key.
wrk.method = "POST"
wrk.body = '{"model":"gpt-image-1.5","prompt":"bench","gptImageParams":{"quality":"low"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("KEY") or "none"

local started = 0
function setup(thread)
  started = started + 1
  thread:set("tid", started)
end

local idem = os.getenv("IDEM") == "1"
local counter = 0
local run = tostring(os.time())

function request()
  if idem then
    counter = counter + 1
    wrk.headers["Idempotency-Key"] = run .. "-" .. tostring(tid) .. "-" .. counter
  end
  return wrk.format()
end
