-- Argo CD resource health of a kar98k LoadTestSchedule (kar98k.dev/LoadTestSchedule).
-- Install: argocd-cm, key `resource.customizations.health.kar98k.dev_LoadTestSchedule`.
-- Suspended: spec.suspend. Degraded: the spec is invalid, or the last finished run failed.
-- Progressing: the operator has not seen this generation yet. Healthy: scheduled, last run
-- passed (or none finished yet). An active run does not make the schedule Progressing: a
-- schedule waits for its runs by design.
local hs = {}
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true"
  return hs
end
local status = obj.status
local generation = obj.metadata and obj.metadata.generation or 0
if status == nil or (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the kar98k operator"
  return hs
end
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message or condition.reason
      return hs
    end
  end
end
if status.lastVerdict == "fail" then
  hs.status = "Degraded"
  hs.message = "the last run failed"
  return hs
end
hs.status = "Healthy"
hs.message = status.message or "scheduled"
return hs
