-- GET with a token never sent before in this run: $BENCH_TEMPLATE followed by the thread's id
-- and a counter (characters a b64token allows), so that every request needs its own issuer call.
-- $BENCH_XCLIENT, when set, is sent as X-Client (the flood scenario's client address).
local template = os.getenv("BENCH_TEMPLATE")
local head, tail, i = "", "", 0

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   local prefix = template .. "-" .. tostring(os.time()) .. "-" .. tostring(id or 1) .. "-"
   local headers = { Authorization = "Bearer @TOKEN@" }
   if os.getenv("BENCH_XCLIENT") then
      headers["X-Client"] = os.getenv("BENCH_XCLIENT")
   end
   local tpl = wrk.format("GET", wrk.path, headers)
   local at = tpl:find("@TOKEN@", 1, true)
   head, tail = tpl:sub(1, at - 1) .. prefix, tpl:sub(at + 7)
end

function request()
   i = i + 1
   return head .. i .. tail
end
