-- wrk script: each pre-signed webhook of the file once (bench/webhook_load.lua's lines and
-- threads), then the connections idle until wrk ends: at the end of its duration, or on SIGINT
-- once the caller saw the work done. A separate script because wrk's delay() hook, once defined,
-- puts a timer before every request, which would slow the plain runs down.
-- Usage: wrk -t T -c C -d D -s bench/webhook_once.lua URL -- FILE T
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "webhook_load.lua")

local load_lines = init
local sent = 0

function init(args)
  load_lines(args)
  -- wrk asks thread 0's script for one request before the run, to check it, and never sends
  -- it: that thread's first line would be lost.
  if tid == 0 and #requests > 0 then table.insert(requests, 1, requests[1]) end
end

function request()
  sent = math.min(sent + 1, #requests)
  return requests[sent]
end

function delay()
  if sent >= #requests then return 3600000 end
  return 0
end
