-- wrk script: `login` with the bench user's credentials (EMAIL, PASSWORD from the environment).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"query":"mutation($i: LoginInput!) { login(input: $i) { accessToken } }","variables":{"i":{"email":"%s","password":"%s"}}}',
  os.getenv("EMAIL"), os.getenv("PASSWORD"))
