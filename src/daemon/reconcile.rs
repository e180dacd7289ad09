//! The reconciler: desired services (rendered specs) against what the engine reports → a `Plan`
//! (a printable value) → apply. One path for first deploy, change and drift repair; applying a
//! plan and planning again yields an empty plan. Removal is a separate, explicit plan: nothing
//! here ever removes a stack just because the desired state does not mention it.

pub use hafen_api::plan::{Action, Applied, Plan};
use hafen_engine::{Engine, EngineError, ServiceSpec, ServiceState, VolumeState};
use std::time::Duration;

/// What the engine has for one stack.
#[derive(Debug, Clone, Default)]
pub struct Actual {
    pub network: bool,
    pub services: Vec<ServiceState>,
    pub volumes: Vec<VolumeState>,
}

impl Actual {
    pub async fn read(engine: &dyn Engine, stack: &str) -> Result<Actual, EngineError> {
        Ok(Actual {
            network: engine.network_exists(stack).await?,
            services: engine.list_services(Some(stack)).await?,
            volumes: engine.list_volumes(Some(stack)).await?,
        })
    }
}

/// Differences between a running service and its spec that hafen did not make.
pub fn drift(spec: &ServiceSpec, st: &ServiceState) -> Vec<String> {
    let o = &st.observed;
    let mut d = Vec::new();
    if o.image != spec.image {
        d.push(format!("image {} (expected {})", o.image, spec.image));
    }
    if o.memory_bytes != spec.memory_bytes {
        d.push(format!("memory limit {} (expected {})", o.memory_bytes, spec.memory_bytes));
    }
    if o.pids_limit != spec.pids_limit {
        d.push(format!("pids limit {} (expected {})", o.pids_limit, spec.pids_limit));
    }
    if o.privileged {
        d.push("privileged".into());
    }
    if o.restart_policy != hafen_engine::RESTART_POLICY {
        d.push(format!("restart policy {} (expected {})", o.restart_policy, hafen_engine::RESTART_POLICY));
    }
    d
}

/// The plan that brings `actual` to `desired` (specs in dependency order).
pub fn plan_deploy(stack: &str, volumes: &[String], desired: &[ServiceSpec], actual: &Actual) -> Plan {
    let mut actions = Vec::new();
    if !actual.network {
        actions.push(Action::CreateNetwork { stack: stack.into() });
    }
    for v in volumes {
        if !actual.volumes.iter().any(|a| &a.volume == v) {
            actions.push(Action::CreateVolume { stack: stack.into(), volume: v.clone() });
        }
    }
    for spec in desired {
        match actual.services.iter().find(|s| s.service == spec.service) {
            None => actions.push(Action::CreateService { spec: Box::new(spec.clone()) }),
            Some(st) if st.spec_hash.as_deref() != Some(hafen_core::spec::spec_hash(spec).as_str()) => actions.push(Action::RecreateService {
                spec: Box::new(spec.clone()),
                reason: "definition, settings or image changed".into(),
            }),
            Some(st) => {
                let d = drift(spec, st);
                if !d.is_empty() {
                    actions.push(Action::RecreateService { spec: Box::new(spec.clone()), reason: format!("changed by hand: {}", d.join(", ")) });
                } else if !st.running && st.status != "restarting" {
                    actions.push(Action::StartService { stack: stack.into(), service: st.service.clone(), name: st.name.clone() });
                }
            }
        }
    }
    for st in &actual.services {
        if !desired.iter().any(|d| d.service == st.service) {
            actions.push(Action::RemoveService { stack: stack.into(), service: st.service.clone(), name: st.name.clone() });
        }
    }
    Plan { stack: stack.into(), actions }
}

/// The plan that removes a stack; volumes (the data) only with `purge`.
pub fn plan_remove(stack: &str, actual: &Actual, purge: bool) -> Plan {
    let mut actions: Vec<Action> = actual
        .services
        .iter()
        .rev()
        .map(|s| Action::RemoveService { stack: stack.into(), service: s.service.clone(), name: s.name.clone() })
        .collect();
    if actual.network {
        actions.push(Action::RemoveNetwork { stack: stack.into() });
    }
    if purge {
        for v in &actual.volumes {
            actions.push(Action::RemoveVolume { stack: stack.into(), volume: v.volume.clone() });
        }
    }
    Plan { stack: stack.into(), actions }
}

/// Applies the plan in order; stops at the first failure (the next reconcile retries).
/// `observer` hears about each finished action (events, tests' pause hook).
pub async fn apply(
    engine: &dyn Engine,
    plan: &Plan,
    observer: &(dyn Fn(&Action, &Result<(), EngineError>) + Send + Sync),
) -> (Vec<Applied>, Result<(), EngineError>) {
    let mut done = Vec::new();
    for a in &plan.actions {
        let r = match a {
            Action::CreateNetwork { stack } => engine.create_network(stack).await,
            Action::CreateVolume { stack, volume } => engine.create_volume(stack, volume).await,
            Action::CreateService { spec } => engine.create_service(spec).await,
            Action::RecreateService { spec, .. } => match engine.remove_service(&spec.name()).await {
                Ok(()) => engine.create_service(spec).await,
                Err(e) => Err(e),
            },
            Action::StartService { name, .. } => engine.start_service(name).await,
            Action::RemoveService { name, .. } => match engine.stop_service(name, Duration::from_secs(20)).await {
                Ok(()) => engine.remove_service(name).await,
                Err(e) => Err(e),
            },
            Action::RemoveNetwork { stack } => engine.remove_network(stack).await,
            Action::RemoveVolume { stack, volume } => engine.remove_volume(stack, volume).await,
        };
        observer(a, &r);
        done.push(Applied { action: a.key(), description: a.to_string(), ok: r.is_ok(), error: r.as_ref().err().map(|e| e.to_string()) });
        if let Err(e) = r {
            return (done, Err(e));
        }
    }
    (done, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafen_engine::fake::FakeEngine;
    use std::collections::BTreeMap;

    fn spec(svc: &str, mem: u64) -> ServiceSpec {
        ServiceSpec {
            stack: "s".into(),
            service: svc.into(),
            image: "img:1".into(),
            command: None,
            entrypoint: None,
            env: BTreeMap::new(),
            mounts: vec![],
            ports: vec![],
            user: Some("1000:1000".into()),
            working_dir: None,
            read_only: false,
            cap_add: vec![],
            memory_bytes: mem,
            pids_limit: 100,
            healthcheck: None,
        }
    }

    async fn converge(e: &FakeEngine, desired: &[ServiceSpec]) -> Plan {
        let actual = Actual::read(e, "s").await.unwrap();
        let p = plan_deploy("s", &["data".into()], desired, &actual);
        let (_, r) = apply(e, &p, &|_, _| {}).await;
        r.unwrap();
        p
    }

    #[tokio::test]
    async fn first_deploy_then_empty_plan() {
        let e = FakeEngine::default();
        let d = vec![spec("db", 1 << 28), spec("app", 1 << 28)];
        let p = converge(&e, &d).await;
        assert_eq!(p.actions.len(), 4, "{p:?}");
        let p2 = plan_deploy("s", &["data".into()], &d, &Actual::read(&e, "s").await.unwrap());
        assert!(p2.is_empty(), "{p2:?}");
    }

    #[tokio::test]
    async fn changed_spec_recreates_and_stopped_service_starts() {
        let e = FakeEngine::default();
        converge(&e, &[spec("db", 1 << 28)]).await;
        e.state.lock().unwrap().services.get_mut("hafen-s-db").unwrap().1.running = false;
        let p = plan_deploy("s", &["data".into()], &[spec("db", 1 << 28)], &Actual::read(&e, "s").await.unwrap());
        assert!(matches!(p.actions.as_slice(), [Action::StartService { .. }]), "{p:?}");
        let p = plan_deploy("s", &["data".into()], &[spec("db", 1 << 29)], &Actual::read(&e, "s").await.unwrap());
        assert!(matches!(p.actions.as_slice(), [Action::RecreateService { .. }]), "{p:?}");
    }

    #[tokio::test]
    async fn hand_changes_are_drift() {
        let e = FakeEngine::default();
        converge(&e, &[spec("db", 1 << 28)]).await;
        e.state.lock().unwrap().services.get_mut("hafen-s-db").unwrap().1.observed.memory_bytes = 1 << 30;
        let p = plan_deploy("s", &["data".into()], &[spec("db", 1 << 28)], &Actual::read(&e, "s").await.unwrap());
        match p.actions.as_slice() {
            [Action::RecreateService { reason, .. }] => assert!(reason.contains("changed by hand: memory"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn remove_keeps_volumes_unless_purge() {
        let e = FakeEngine::default();
        converge(&e, &[spec("db", 1 << 28)]).await;
        let a = Actual::read(&e, "s").await.unwrap();
        assert!(!plan_remove("s", &a, false).actions.iter().any(|x| matches!(x, Action::RemoveVolume { .. })));
        assert!(plan_remove("s", &a, true).actions.iter().any(|x| matches!(x, Action::RemoveVolume { .. })));
    }

    #[tokio::test]
    async fn engine_down_stops_apply_without_side_effects() {
        let e = FakeEngine::default();
        e.state.lock().unwrap().down = true;
        let p = plan_deploy("s", &[], &[spec("db", 1 << 28)], &Actual::default());
        let (done, r) = apply(&e, &p, &|_, _| {}).await;
        assert!(r.is_err());
        assert_eq!(done.len(), 1);
        assert!(e.state.lock().unwrap().services.is_empty());
    }
}
