-- GET with "Authorization: DPoP $BENCH_TOKEN" and a DPoP proof never sent before: thread k reads
-- the proofs of the file ${BENCH_PROOFS}k (bench/bench02.py makes them, one a line, before each
-- run) and sends each once, in order. Past the last it starts again: the module refuses those
-- replays (counted as non-2xx), which says the file was too short.
local proofs, n, i = {}, 0, 0
local head, tail

function setup(thread)
   thread_count = (thread_count or 0) + 1
   thread:set("id", thread_count)
end

function init(args)
   for line in io.lines(os.getenv("BENCH_PROOFS") .. tostring(id or 1)) do
      n = n + 1
      proofs[n] = line
   end
   local tpl = wrk.format("GET", wrk.path, { Authorization = "DPoP " .. os.getenv("BENCH_TOKEN"),
                                             DPoP = "@PROOF@" })
   local at = tpl:find("@PROOF@", 1, true)
   head, tail = tpl:sub(1, at - 1), tpl:sub(at + 7)
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   return head .. proofs[i] .. tail
end
