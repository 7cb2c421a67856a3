-- GET with a token never sent before in this run: $BENCH_TEMPLATE followed by the thread's id
-- and a counter (characters a b64token allows), so that every request needs its own issuer call.
local template = os.getenv("BENCH_TEMPLATE")
local prefix, i = "", 0

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   prefix = template .. "-" .. tostring(os.time()) .. "-" .. tostring(id or 1) .. "-"
end

function request()
   i = i + 1
   return wrk.format("GET", wrk.path, { Authorization = "Bearer " .. prefix .. i })
end
