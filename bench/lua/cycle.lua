-- GET with each thread walking its own share of the tokens in order, round and round: thread j
-- of T takes tokens j, j+T, j+2T, ... With more tokens per thread than connections, no two
-- requests in flight carry the same token, so nothing can be coalesced.
-- Tokens: $BENCH_TEMPLATE and $BENCH_COUNT as in tokens.lua, or the lines of $BENCH_TOKENS (a
-- few thousand tokens minted by an issuer).
-- $BENCH_ONCE=1: each token once (for filling the cache), then the thread creates the file
-- $BENCH_DONE<thread number> and stops; the run is ended from outside once every thread has.
local template = os.getenv("BENCH_TEMPLATE")
local toks, n, i = {}, 0, 0
local head, tail
local once = os.getenv("BENCH_ONCE") == "1"

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   local k, T = id or 1, tonumber(os.getenv("BENCH_THREADS") or "1")
   if template then
      for j = k, tonumber(os.getenv("BENCH_COUNT")), T do
         n = n + 1
         toks[n] = template .. string.format("%07d", j)
      end
   else
      local j = 0
      for line in io.lines(os.getenv("BENCH_TOKENS")) do
         j = j + 1
         if (j - k) % T == 0 then
            n = n + 1
            toks[n] = line
         end
      end
   end
   local tpl = wrk.format("GET", wrk.path, { Authorization = "Bearer @TOKEN@" })
   local at = tpl:find("@TOKEN@", 1, true)
   head, tail = tpl:sub(1, at - 1), tpl:sub(at + 7)
end

function request()
   i = i + 1
   if i > n then
      if once then
         if i == n + 1 then
            local f = io.open(os.getenv("BENCH_DONE") .. tostring(id or 1), "w")
            if f then f:close() end
         end
         wrk.thread:stop()
      end
      i = 1
   end
   return head .. toks[i] .. tail
end
