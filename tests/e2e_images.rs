//! Images without a registry, through the daemon: `stack deploy` builds a missing recipe image
//! itself (on hafen's Debian base), a service keeps the image it is pinned to when the recipe
//! changes, and only an explicit deploy moves it (rebuild, recreate).

mod common;
use common::*;
use std::time::Duration;

fn image_of(container: &str) -> String {
    docker(&["inspect", "-f", "{{.Config.Image}}", container])
}

#[test]
fn deploy_builds_missing_images_and_keeps_pins_until_deployed_again() {
    ensure_images(); // the Debian base
    let id = "tiny-pin";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/tiny"), id)]);
    let (images, recipe) = d.unique_tiny_recipe();
    d.start();

    let dry = d.ok(&["stack", "deploy", id, "--dry-run"]);
    assert!(dry.contains("build hafen/tiny:"), "{dry}");
    let out = d.ok(&["stack", "deploy", id, "--wait", "120"]);
    assert!(out.contains("is healthy"), "{out}");
    let container = format!("hafen-{id}-idle");
    let first = image_of(&container);
    assert!(first.starts_with("hafen/tiny:"), "{first}");
    let cid = docker(&["inspect", "-f", "{{.Id}}", &container]);
    let ro = docker(&["inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", &container]);
    assert_eq!(ro, "true");

    // The recipe changes: the running service keeps its pinned image through reconcile passes.
    std::fs::write(images.join("tiny/Dockerfile"), recipe.clone() + "USER 0\nRUN echo changed > /etc/tiny-changed\nUSER 1000:1000\n").unwrap();
    let seen = d.json(&["status"])["last_reconcile"].clone();
    wait_for(Duration::from_secs(30), || (d.json(&["status"])["last_reconcile"] != seen).then_some(())).expect("no reconcile pass");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &container]), cid, "reconciler moved a pinned image");
    assert_eq!(image_of(&container), first);

    // An explicit deploy shows the move, rebuilds and recreates.
    let dry = d.ok(&["stack", "deploy", id, "--dry-run"]);
    assert!(dry.contains("recipe changed, image moves from") && dry.contains("recreate service"), "{dry}");
    d.ok(&["stack", "deploy", id, "--wait", "120"]);
    let second = image_of(&container);
    assert!(second.starts_with("hafen/tiny:") && second != first, "{first} → {second}");
    assert_eq!(docker(&["exec", &container, "cat", "/etc/tiny-changed"]), "changed");

    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
    for img in [first, second] {
        docker(&["rmi", &img]);
    }
}
