-- wrk script for bench/gateway/soak.sh: each connection waits $PAUSE_MS whole
-- milliseconds (wrk's timers have no finer grain) after every answer, so the run
-- asks for a steady rate instead of as much as the gateway gives.
local pause = tonumber(os.getenv("PAUSE_MS") or "0")

delay = function()
    return pause
end
