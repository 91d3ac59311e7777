-- wrk script: `drafts(first: 20)` with a bearer token (TOKEN from the environment).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"query":"{ drafts(first: 20) { edges { cursor node { id title status priceCents createdAt } } pageInfo { hasNextPage endCursor } } }"}'
