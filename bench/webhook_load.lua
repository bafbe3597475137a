-- wrk script: POST pre-signed Stripe webhooks from a file ("signature<TAB>body" per line).
-- Each thread sends its own share of the lines, in turn (wrapping around when it runs out).
-- Usage: wrk -t T -c C -d D -s bench/webhook_load.lua URL -- FILE T
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

requests = {}  -- global: bench/webhook_once.lua counts them
local index = 0

function init(args)
  local path, threads = args[1], tonumber(args[2])
  local line_no = 0
  for line in io.lines(path) do
    if line_no % threads == tid then
      local tab = line:find("\t", 1, true)
      local headers = {["Content-Type"] = "application/json", ["Stripe-Signature"] = line:sub(1, tab - 1)}
      requests[#requests + 1] = wrk.format("POST", nil, headers, line:sub(tab + 1))
    end
    line_no = line_no + 1
  end
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
