-- wrk script: the `me` query with a bearer token (TOKEN from the environment).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"query":"{ me { id email role plan } }"}'
