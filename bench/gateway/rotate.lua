-- wrk script for bench/gateway/identities.sh: every request carries the next
-- access token of the file $TOKENS (one per line), for tenant $TENANT. With
-- $PASSES > 0, stops after that many passes over the file (the cold pass).

local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = "Bearer " .. line
end
local tenant = os.getenv("TENANT")
local passes = tonumber(os.getenv("PASSES") or "0")
local limit = passes * #tokens
local sent, answered = 0, 0

request = function()
    sent = sent + 1
    local headers = { ["Authorization"] = tokens[(sent - 1) % #tokens + 1], ["X-Tenant-Id"] = tenant }
    return wrk.format("GET", nil, headers)
end

response = function()
    answered = answered + 1
    if limit > 0 and answered >= limit then
        wrk.thread:stop()
    end
end
