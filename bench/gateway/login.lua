-- wrk script: every request is a login of the bench user (bench/gateway/stack.sh).
wrk.method = "POST"
wrk.body = '{"email":"bench@example.test","password":"benchmark password"}'
wrk.headers["Content-Type"] = "application/json"
