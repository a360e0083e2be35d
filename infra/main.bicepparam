using 'main.bicep'

// Report-only first: ASR_APPLY false and an empty scope allowlist mean the app writes nothing.
param namePrefix = 'asrrem'
param monitoredSubscriptions = '00000000-0000-0000-0000-000000000000,11111111-1111-1111-1111-111111111111'
param apply = false
param scopeAllowlist = ''
param maxChanges = 20
param scanIntervalMinutes = 30  // scanSchedule follows it: every 30 minutes
param includeKeyVault = false
param includeGuestManagement = false
param fixRoutes = true
param readEffectiveRoutes = false
param readEffectiveNsgs = false
param readAdminRules = true
