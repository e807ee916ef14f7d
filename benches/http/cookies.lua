-- Cycles through real session cookies (one per line in $COOKIES), one per request, so 32
-- connections hit many sessions like real visitors do.
local cookies = {}
for line in io.lines(os.getenv("COOKIES")) do
  cookies[#cookies + 1] = line
end
local i = math.random(#cookies)
request = function()
  i = i % #cookies + 1
  return wrk.format("GET", nil, { ["Cookie"] = cookies[i] })
end
