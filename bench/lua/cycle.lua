-- GET with each thread walking its own share of the tokens in $BENCH_TOKENS in order, round and
-- round: thread k of T takes tokens k, k+T, k+2T, ... With more tokens per thread than
-- connections, no two requests in flight carry the same token, so nothing can be coalesced.
-- $BENCH_ONCE=1: each token once (for filling the cache), then the thread stops; the run is
-- ended from outside once the issuer has seen every token.
local reqs, n, i = {}, 0, 0
local once = os.getenv("BENCH_ONCE") == "1"

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   local k, T = id or 1, tonumber(os.getenv("BENCH_THREADS") or "1")
   local j = 0
   for line in io.lines(os.getenv("BENCH_TOKENS")) do
      j = j + 1
      if (j - k) % T == 0 then
         n = n + 1
         reqs[n] = wrk.format("GET", wrk.path, { Authorization = "Bearer " .. line })
      end
   end
end

function request()
   i = i + 1
   if i > n then
      if once then
         wrk.thread:stop()
      end
      i = 1
   end
   return reqs[i]
end
