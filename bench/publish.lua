-- wrk script: POST one small JSON publication per request (HTTP publish scenario).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"topic":"public.bench.nobody","data":{"hello":"world","n":42}}'
