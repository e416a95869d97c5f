-- keys.lua - wrk script for bench/keys/run.sh: every request has a path of
-- its own (/k/1, /k/2, ...), so a rate limiter keyed on ip+path tracks one
-- new key per request. Each write carries DEPTH pipelined requests.
--
-- Usage: wrk -t1 -s bench/keys/keys.lua URL -- N MARKER [DEPTH]
--   N       distinct keys to create; after the N-th request every further
--           one reuses /k/0 (no new key)
--   MARKER  file written once N responses have arrived: run.sh then stops
--           wrk with SIGINT (wrk itself would wait out its -d duration)
--   DEPTH   pipelined requests per write (default 16)
-- done() prints "Keys sent: N" and "Status counts: 200=..." (exact).
-- Meant for one thread (-t1): the paths are not split between threads.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   want = tonumber(args[1] or "1000000")
   marker = args[2]
   depth = tonumber(args[3] or "16")
   sent = 0        -- distinct paths generated
   got = 0         -- responses
   counts = {}
   marked = false
   verified = false
end

function request()
   local r = {}
   -- wrk calls request() once before the run to count the pipelined
   -- requests (thread 0 only): those are never sent, so make no keys.
   if not verified then
      verified = true
      for i = 1, depth do r[i] = wrk.format("GET", "/k/0") end
      return table.concat(r)
   end
   for i = 1, depth do
      local path = "/k/0"
      if sent < want then
         sent = sent + 1
         path = "/k/" .. sent
      end
      r[i] = wrk.format("GET", path)
   end
   return table.concat(r)
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
   got = got + 1
   if got >= want and not marked then
      marked = true
      if marker then
         local f = io.open(marker, "w")
         if f then f:write(got, "\n"); f:close() end
      end
   end
end

function done(summary, latency, requests)
   local total, keys, sent_all = {}, {}, 0
   for _, t in ipairs(threads) do
      sent_all = sent_all + (t:get("sent") or 0)
      for status, n in pairs(t:get("counts") or {}) do
         total[status] = (total[status] or 0) + n
      end
   end
   for status in pairs(total) do table.insert(keys, status) end
   table.sort(keys)
   local parts = {}
   for _, status in ipairs(keys) do
      table.insert(parts, string.format("%d=%d", status, total[status]))
   end
   io.write(string.format("Keys sent: %d\n", sent_all))
   io.write("Status counts: " .. table.concat(parts, " ") .. "\n")
end
