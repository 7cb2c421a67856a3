-- POST RFC 7662 introspection requests straight to the issuer, as the module sends them: form
-- "token=<t>" with HTTP Basic client authentication ($BENCH_BASIC is the base64 of id:secret).
-- Each thread walks its own share of $BENCH_TOKENS in order, as cycle.lua does.
local reqs, n, i = {}, 0, 0

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   local k, T = id or 1, tonumber(os.getenv("BENCH_THREADS") or "1")
   local headers = {
      ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Accept"] = "application/json",
   }
   local j = 0
   -- A few thousand short opaque tokens: formatting them all here is quick.
   for line in io.lines(os.getenv("BENCH_TOKENS")) do
      j = j + 1
      if (j - k) % T == 0 then
         n = n + 1
         reqs[n] = wrk.format("POST", wrk.path, headers, "token=" .. line)
      end
   end
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   return reqs[i]
end
