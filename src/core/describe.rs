//! Plans for people: each action of a plan (`hafen_api::Action`) as a catalogue key and its
//! arguments, so a German admin reads the plan — and the event log's lines about it — in German.
//! The contract's own `Display` of an action stays the English line recorded since the first
//! release.

use hafen_api::{Action, Message};

/// An action with everything the plan knows (image, reason).
pub fn action(a: &Action) -> Message {
    let m = |code: &str| Message::new(&format!("action.{code}"));
    match a {
        Action::CreateNetwork { stack } => m("create_network").arg("name", format!("hafen-{stack}")),
        Action::CreateVolume { stack, volume } => m("create_volume").arg("name", format!("hafen-{stack}-{volume}")),
        Action::CreateService { spec } => m("create_service").arg("name", spec.name()).arg("image", &spec.image),
        Action::RecreateService { spec, reason } => m("recreate_service").arg("name", spec.name()).arg("reason", reason),
        Action::StartService { name, .. } => m("start_service").arg("name", name),
        Action::RemoveService { name, .. } => m("remove_service").arg("name", name),
        Action::RemoveNetwork { stack } => m("remove_network").arg("name", format!("hafen-{stack}")),
        Action::RemoveVolume { stack, volume } => m("remove_volume").arg("name", format!("hafen-{stack}-{volume}")),
    }
}

/// An action from the short key an event keeps (`Action::key`: `create:hafen-t-db`); image and
/// reason are not in the key, so the line is shorter than the plan's. `None` for an unknown key.
pub fn action_key(key: &str) -> Option<Message> {
    let (verb, name) = key.split_once(':')?;
    let m = |code: &str, name: String| Some(Message::new(&format!("action.{code}")).arg("name", name));
    match verb {
        "network" => m("create_network", format!("hafen-{name}")),
        "volume" => m("create_volume", format!("hafen-{name}")),
        "create" => m("create_service_short", name.to_string()),
        "recreate" => m("recreate_service_short", name.to_string()),
        "start" => m("start_service", name.to_string()),
        "remove" => m("remove_service", name.to_string()),
        "remove-network" => m("remove_network", format!("hafen-{name}")),
        "remove-volume" => m("remove_volume", format!("hafen-{name}")),
        _ => None,
    }
}

/// The action's line in `lang`.
pub fn action_in(lang: &str, a: &Action) -> String {
    crate::i18n::render(lang, &action(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafen_api::spec::ServiceSpec;

    fn spec() -> ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "stack": "t", "service": "db", "image": "hafen/postgres15:1", "command": null, "entrypoint": null,
            "env": {}, "mounts": [], "ports": [], "user": null, "working_dir": null, "read_only": true,
            "cap_add": [], "memory_bytes": 1, "pids_limit": 1, "healthcheck": null
        }))
        .unwrap()
    }

    #[test]
    fn every_action_reads_in_english_as_before_and_in_german() {
        let all = [
            Action::CreateNetwork { stack: "t".into() },
            Action::CreateVolume { stack: "t".into(), volume: "data".into() },
            Action::CreateService { spec: Box::new(spec()) },
            Action::RecreateService { spec: Box::new(spec()), reason: "x".into() },
            Action::StartService { stack: "t".into(), service: "db".into(), name: "hafen-t-db".into() },
            Action::RemoveService { stack: "t".into(), service: "db".into(), name: "hafen-t-db".into() },
            Action::RemoveNetwork { stack: "t".into() },
            Action::RemoveVolume { stack: "t".into(), volume: "data".into() },
        ];
        for a in &all {
            assert_eq!(action_in("en", a), a.to_string());
            let de = action_in("de", a);
            assert!(de != a.to_string() && !de.contains('?') && !de.contains("action."), "{de}");
            let short = action_key(&a.key()).expect("every key reads back");
            assert!(!crate::i18n::render("de", &short).contains('?'), "{short:?}");
        }
        assert_eq!(action_in("de", &all[7]), "Volume hafen-t-data und seine Daten LÖSCHEN");
        assert_eq!(action_key("nonsense"), None);
    }
}
