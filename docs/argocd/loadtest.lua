-- Argo CD resource health of a kar98k LoadTest (kar98k.dev/LoadTest).
-- Install: argocd-cm, key `resource.customizations.health.kar98k.dev_LoadTest` (docs/gitops.md).
-- Healthy: the run succeeded. Degraded: it failed (thresholds, bad spec, pods never ready).
-- Suspended: paused by spec.paused. Progressing: not yet observed, starting or running.
local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kar98k operator"
  return hs
end
local status = obj.status
local generation = obj.metadata and obj.metadata.generation or 0
local observed = status.observedGeneration or 0
local message = status.message or status.phase
if status.phase == "Succeeded" and observed >= generation then
  hs.status = "Healthy"
elseif status.phase == "Failed" and observed >= generation then
  hs.status = "Degraded"
elseif status.phase == "Paused" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
