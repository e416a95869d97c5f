-- status.lua - a wrk script that counts responses by status code and prints
-- them, with wrk's own totals and socket errors, as one JSON line after the
-- run (a line starting with "STATUS_JSON "). Paths to request in turn may
-- follow "--":   wrk -s tests/tools/status.lua URL -- /users/1 /bytes/100
-- Used by tests/integration/test_faults.py and tests/soak/soak.sh.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   counts = {}
   paths = {}
   for i = 1, #args do
      paths[#paths + 1] = args[i]
   end
   if #paths == 0 then
      paths[1] = wrk.path
   end
   idx = 0
end

function request()
   idx = idx % #paths + 1
   return wrk.format(nil, paths[idx])
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      local c = t:get("counts")
      for k, v in pairs(c) do
         total[k] = (total[k] or 0) + v
      end
   end
   local parts = {}
   for k, v in pairs(total) do
      parts[#parts + 1] = string.format('"%d":%d', k, v)
   end
   local e = summary.errors
   io.write(string.format('STATUS_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"status":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes, table.concat(parts, ","),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
