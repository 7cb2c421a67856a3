-- GET the benchmark path with "Authorization: Bearer <token>", a token drawn at random among
-- $BENCH_COUNT tokens: token k is $BENCH_TEMPLATE followed by k in 7 digits (bench/run makes
-- the template from a Keycloak-shaped JWT, so every token is one, and distinct).
--
-- The tokens are made, not read from a file, because wrk runs each thread's init() and starts
-- that thread before it runs the next one's, and counts the rate from when the last one
-- started: reading 100,000 tokens of 1.4 KB (0.6 s per thread) let the first thread send
-- requests early that were then counted over too short a time.
local template = os.getenv("BENCH_TEMPLATE")
local count = tonumber(os.getenv("BENCH_COUNT"))
local head, tail

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   local tpl = wrk.format("GET", wrk.path, { Authorization = "Bearer @TOKEN@" })
   local at = tpl:find("@TOKEN@", 1, true)
   head, tail = tpl:sub(1, at - 1) .. template, tpl:sub(at + 7)
   math.randomseed(os.time() * 31 + (id or 1) * 7919)
end

function request()
   return head .. string.format("%07d", math.random(count)) .. tail
end
