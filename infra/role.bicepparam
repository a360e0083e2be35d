using 'role.bicep'

// Report-only role first; redeploy with allowWrites = true when turning ASR_APPLY on.
param allowWrites = false
param allowFirewallWrites = false
param allowEffectiveRoutes = false
param allowEffectiveNsgs = false
param allowAdminRules = true
param assignableScopes = [
  '/subscriptions/00000000-0000-0000-0000-000000000000'
  '/subscriptions/11111111-1111-1111-1111-111111111111'
]
