-- Health of an extraction.dev ExtractionRun: a multi-stage extraction pipeline run as Jobs.
--
-- The operator writes the kstatus conditions Ready, Reconciling and Stalled, each with the
-- generation it describes, plus status.phase (Pending, Running, Succeeded, Failed, Suspended)
-- and status.message, a one-line summary of the most important fact now. Fresh conditions
-- decide; the phase is the fallback for a status without them. The script uses only Lua's base
-- functions, so it also runs from argocd-cm without resource.customizations.useOpenLibs.
local hs = {}

local function text(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

local function number(value)
  if type(value) == "number" then
    return value
  end
  return nil
end

local function verdict(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local metadata = obj.metadata
if type(metadata) ~= "table" then
  metadata = {}
end
local status = obj.status
-- The CRD defaults status to {observedGeneration = 0}, so a run the operator has not written yet
-- is caught by the generation check below; no status at all comes from a CRD without that
-- default (an older install) or a tool that drops it.
if type(status) ~= "table" or next(status) == nil then
  return verdict("Progressing", "waiting for the operator to report the run's status")
end

-- A status (or a condition) written for an older generation says nothing about the spec as it
-- is now, whatever it says.
local generation = number(metadata.generation)
local function older(observed)
  observed = number(observed)
  return generation ~= nil and observed ~= nil and observed < generation
end

local stale = older(status.observedGeneration)
local conditions = {}
if type(status.conditions) == "table" then
  for _, condition in ipairs(status.conditions) do
    if type(condition) == "table" then
      local kind = condition.type
      if kind == "Ready" or kind == "Reconciling" or kind == "Stalled" then
        if older(condition.observedGeneration) then
          stale = true
        elseif conditions[kind] == nil then
          conditions[kind] = condition
        end
      end
    end
  end
end
if stale then
  return verdict("Progressing", "waiting for the operator to observe generation " .. generation)
end

local summary = text(status.message)
local function about(condition, otherwise)
  return text(condition.message) or summary or text(condition.reason) or otherwise
end

local stalled = conditions.Stalled
local ready = conditions.Ready
local reconciling = conditions.Reconciling
if stalled ~= nil and stalled.status == "True" then
  -- The run failed, or its spec has a problem the schema could not catch (reason InvalidSpec).
  return verdict("Degraded", about(stalled, "the run is stalled"))
end
if ready ~= nil and ready.status == "True" then
  return verdict("Healthy", about(ready, "the run succeeded"))
end
if reconciling ~= nil and reconciling.status == "True" then
  -- Pending, Running, a stage waiting for its retry, or held by an open circuit breaker.
  return verdict("Progressing", about(reconciling, "the run is in progress"))
end
if reconciling ~= nil and reconciling.status == "False" and reconciling.reason == "Suspended" then
  return verdict("Suspended", about(reconciling, "the run is suspended"))
end

local phase = status.phase
if phase == nil or phase == "Pending" or phase == "Running" then
  return verdict("Progressing", summary or "the run is in progress")
end
if phase == "Succeeded" then
  return verdict("Healthy", summary or "the run succeeded")
end
if phase == "Failed" then
  return verdict("Degraded", summary or "the run failed")
end
if phase == "Suspended" then
  return verdict("Suspended", summary or "the run is suspended")
end
if type(phase) == "string" then
  return verdict("Unknown", "unknown phase " .. phase)
end
return verdict("Unknown", "status.phase is not a string")
