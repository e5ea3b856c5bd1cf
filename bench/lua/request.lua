-- One request, sent again and again; args: METHOD PATH [BODY_FILE]. The Authorization header
-- comes from the environment (BENCH_AUTH), so one script serves the JWT and the API-key runs.
-- run.py parses the BENCH_RESULT line that done() writes.

function init(args)
   wrk.method = assert(args[1], "usage: request.lua METHOD PATH [BODY_FILE]")
   wrk.path = assert(args[2], "usage: request.lua METHOD PATH [BODY_FILE]")
   wrk.headers["Accept"] = "application/json"
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then
      wrk.headers["Authorization"] = auth
   end
   if args[3] then
      local f = assert(io.open(args[3], "rb"))
      wrk.body = f:read("*a")
      f:close()
      wrk.headers["Content-Type"] = "application/json"
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
