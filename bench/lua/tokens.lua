-- GET the benchmark path with "Authorization: Bearer <token>", the token drawn at random from
-- the file named by $BENCH_TOKENS (one a line). Requests are formatted once, in init, so that
-- drawing costs wrk the same for the unauthenticated httpd and the module's.
local reqs, n = {}, 0

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   for line in io.lines(os.getenv("BENCH_TOKENS")) do
      n = n + 1
      reqs[n] = wrk.format("GET", wrk.path, { Authorization = "Bearer " .. line })
   end
   math.randomseed(os.time() * 31 + (id or 1) * 7919)
end

function request()
   return reqs[math.random(n)]
end
