-- status.lua - count wrk's responses by HTTP status, exactly.
--
-- wrk's own "Non-2xx or 3xx responses" lumps every status >= 400 together;
-- the 429 scenario needs to know that the rejections really were 429s and
-- how many requests got through. Each thread counts in its own Lua state;
-- done() sums the threads and prints one line that report.py parses:
--   Status counts: 200=1 429=123456
-- Defining response() makes wrk parse every response's headers and body
-- (a little more CPU for wrk on CPU 1, the same for every target).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   counts = {}
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      local c = t:get("counts") or {}
      for status, n in pairs(c) do
         total[status] = (total[status] or 0) + n
      end
   end
   local keys = {}
   for status in pairs(total) do
      table.insert(keys, status)
   end
   table.sort(keys)
   local parts = {}
   for _, status in ipairs(keys) do
      table.insert(parts, string.format("%d=%d", status, total[status]))
   end
   io.write("Status counts: " .. table.concat(parts, " ") .. "\n")
end
