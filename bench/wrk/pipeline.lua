-- pipeline.lua - wrk script for the `pipeline` scenario of bench/wrk/run.sh:
-- every write carries 16 pipelined GET requests for the URL's path, so each
-- connection always has up to 16 requests in flight. wrk counts every
-- response, so "requests/s" stays a count of HTTP requests.
--
-- Usage: wrk -s bench/wrk/pipeline.lua http://127.0.0.1:19080/users/42
-- The depth can be changed with an argument: wrk ... -- 8

local depth = 16

init = function(args)
   if args[1] ~= nil then
      depth = tonumber(args[1])
   end
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, nil)
   end
   req = table.concat(r)
end

request = function()
   return req
end
