//! Answers lost after the API acted (a 500 after commit, a dropped connection, a timeout):
//! no workspace doubled, and a rerun or a rollback claims as the job's own only what the job
//! can know it created (the list before the first run says what was there before).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use dbprov::sandbox::FaultConfig;

use crate::common::{
    JobDir, ResultRow, assert_one_row_per_input_row, by_name, datasource_csv, held, holding_seeded,
    log, methods, names, names_sent, set_flag, statuses, tenants,
};
use crate::fixture::{Job, create_through_faults};
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::ports::ClosedPort;
use crate::process::{dbprov_with, spawn_dbprov, until_requests};

#[tokio::test]
async fn with_30_percent_500s_after_commit_no_row_fails_and_no_workspace_is_doubled() {
    let faults = FaultConfig {
        fail_after_commit_rate: 0.3,
        ..FaultConfig::default()
    };
    let extra = ["--concurrency", "16", "--preflight"];
    let (job, rows) = create_through_faults(faults, 300, &extra).await;
    let stats = job.api.stats().await;
    assert!(
        stats["faults_injected"]["fail_after_commit"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Rows whose first answer was lost say how they were created.
    assert!(rows.iter().any(|r| r["_attempts"] != "1"
        && r["_error_message"] == "an earlier attempt, whose answer was lost, created it"));
}

/// A sandbox holding `old-01`..`old-11` before any run, and a CSV of those eleven and
/// twenty new names, interleaved. (Not ten: a list of exactly one page of ten costs a
/// second request, for its second page.)
async fn eleven_old_and_twenty_new() -> (Job, String) {
    let old: Vec<String> = (1..=11).map(|i| format!("old-{i:02}")).collect();
    let job = Job::holding(&old).await;
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for i in 1..=20 {
        csv.push_str(&format!("new-{i:02},DATASOURCE,postgres-main\n"));
        if i % 2 == 0 {
            csv.push_str(&format!("old-{:02},DATASOURCE,postgres-main\n", i / 2));
        }
    }
    csv.push_str("old-11,DATASOURCE,postgres-main\n");
    let input = job.dir.write("tenants.csv", &csv);
    (job, input)
}

/// Runs `args` until the sandbox has its first request (the preflight's list, with no
/// fault), then makes every later write apply and answer 500, and waits for the end.
/// `--rate 2/s` keeps the first write half a second behind the list.
async fn lose_every_answer_after_the_list(job: &Job, args: &[String]) -> i32 {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--max-attempts", "1"]);
    let mut child = spawn_dbprov(&all);
    until_requests(&job.api, &mut child, 1).await;
    job.sandbox.set_fault_rates(0.0, 1.0, 0.0).unwrap();
    let status = child.wait().await.unwrap();
    job.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    status.code().unwrap_or(-1)
}

#[tokio::test]
async fn a_lost_answer_is_ours_when_the_list_of_its_first_run_lacked_the_name() {
    let (job, input) = eleven_old_and_twenty_new().await;
    let mut args = job.args("results.csv");
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    assert_eq!(lose_every_answer_after_the_list(&job, &first).await, 1);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 31);
    let lost: Vec<&ResultRow> = rows.iter().filter(|r| r["_status"] == "failed").collect();
    assert!(!lost.is_empty(), "{rows:?}");
    for row in &lost {
        assert!(row["name"].starts_with("new-"), "{row:?}");
        assert!(
            row["_error_message"].contains("it was not listed before the run"),
            "{row:?}"
        );
    }
    for row in rows.iter().filter(|r| r["name"].starts_with("old-")) {
        assert_eq!((&*row["_status"], &*row["_attempts"]), ("exists", "0"));
    }

    // The next run lists them: there now, not before the first run, so that run made them.
    set_flag(&mut args, "--rate", "unlimited");
    let before = job.requests().await;
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert_eq!(job.requests().await - before, 1, "the list, and no write");
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 31);
    for row in &rows {
        let expected = if row["name"].starts_with("new-") {
            "created"
        } else {
            "exists"
        };
        assert_eq!(row["_status"], expected, "{row:?}");
    }

    // So a rollback deletes the twenty, and leaves the ten that were there before. (The
    // job's flags without `-o results.csv`: the rollback writes its own file.)
    let undo = dbprov_with(&["rollback", &job.path("results.csv"), "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let left: BTreeSet<String> = job.api.workspace_names().await.into_iter().collect();
    let old: BTreeSet<String> = (1..=11).map(|i| format!("old-{i:02}")).collect();
    assert_eq!(left, old);
}

#[tokio::test]
async fn without_a_list_before_the_first_run_a_name_listed_later_is_not_claimed() {
    let (job, input) = eleven_old_and_twenty_new().await;
    // The first run does not list: whether a lost answer's workspace was there before,
    // nobody can tell.
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    // Without the list, the first request is a write: let it through, lose the rest.
    assert_eq!(lose_every_answer_after_the_list(&job, &first).await, 1);
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "unlimited");
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 31);
    // The old ones met WORKSPACE_NAME_ALREADY_EXISTS in the first run and are `exists`;
    // the new ones whose answer was lost are listed now, and may be ours or not: `exists`,
    // with a message that says so. None is claimed.
    let claimed: Vec<&ResultRow> = rows
        .iter()
        .filter(|r| r["_status"] == "created" && r["_attempts"] == "0")
        .collect();
    assert!(claimed.is_empty(), "{claimed:?}");
    let unsure = rows
        .iter()
        .filter(|r| r["_error_message"].contains("may have created it"))
        .count();
    assert!(unsure > 0, "{rows:?}");
    // A rollback never deletes what the runs did not know to be theirs.
    let undo = dbprov_with(&["rollback", &job.path("results.csv"), "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let left = job.api.workspace_names().await;
    for i in 1..=11 {
        assert!(left.contains(&format!("old-{i:02}")), "{left:?}");
    }
}

#[tokio::test]
async fn a_rollback_undoes_what_lost_answers_may_have_created_where_the_list_lacked_the_name() {
    let (job, input) = eleven_old_and_twenty_new().await;
    let mut args = job.args("results.csv");
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    assert_eq!(lose_every_answer_after_the_list(&job, &first).await, 1);
    // No retry first: the rollback itself deletes those rows' workspaces.
    set_flag(&mut args, "--rate", "unlimited");
    let results = job.path("results.csv");
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let left: BTreeSet<String> = job.api.workspace_names().await.into_iter().collect();
    let old: BTreeSet<String> = (1..=11).map(|i| format!("old-{i:02}")).collect();
    assert_eq!(left, old);
}

#[tokio::test]
async fn a_lost_answer_is_still_ours_after_a_rerun_that_sent_nothing() {
    // The list before the run says the names are free; then every create is committed and
    // answered 500: all three are ours, unseen.
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    let mut args = job.args("results.csv");
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    assert_eq!(lose_every_answer_after_the_list(&job, &first).await, 1);
    set_flag(&mut args, "--rate", "unlimited");
    // A retry with a key the API refuses: a 401, the rest skipped with no attempt.
    let wrong = job.dir.write("wrong-key", "not-the-key\n");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut refused = args.clone();
    set_flag(&mut refused, "--api-key-file", &wrong);
    let results = job.path("results.csv");
    let second = dbprov_with(&["retry", &results], &refused[2..]).await;
    assert_eq!(second.exit, 3, "{}", second.stderr);
    let third = dbprov_with(&["retry", &results], &args[2..]).await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 3);
    assert!(
        rows.iter().all(|r| r["_status"] == "created"),
        "created by the first run, not found existing: {rows:?}"
    );
}

#[tokio::test]
async fn a_connection_never_made_is_not_a_lost_answer_on_the_next_run() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    // Nothing listens on this port.
    let closed = ClosedPort::new();
    let nowhere = closed.url();
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--base-url", &nowhere);
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 3, "unreachable: {}", first.stderr);
    let rows = job.rows();
    assert!(
        rows.iter()
            .all(|r| r["_error_code"] == "ABORTED_UNREACHABLE")
    );
    assert!(rows.iter().any(|r| r["_attempts"] != "0"), "{rows:?}");
    // Someone else creates both names; then the run is resumed against the live API.
    for name in ["t-0001", "t-0002"] {
        let body = serde_json::json!({"name": name, "connectionType": "MULTI_DATAMART"});
        assert_eq!(job.api.create(&body).await.status(), Some(200));
    }
    set_flag(&mut args, "--base-url", &job.sandbox.url());
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let rows = job.rows();
    assert!(
        rows.iter().all(|r| r["_status"] == "exists"),
        "nothing was ever sent to them: {rows:?}"
    );
}

#[tokio::test]
async fn preflight_keeps_lost_answers_created_and_listed_names_exists() {
    let old = names("old", 30);
    // Seed 1 leaves the first request (the list) alone at these rates; the premise is
    // checked below from the log.
    let job = Job::on(
        holding_seeded(
            &old,
            FaultConfig {
                fail_after_commit_rate: 0.25,
                drop_rate: 0.15,
                ..FaultConfig::default()
            },
            1,
        )
        .await,
    );
    let new = names("new", 60);
    let mut all = old.clone();
    all.extend(new.clone());
    let input = job.input(&datasource_csv(&all));
    let mut args = job.args_with_preflight("results.csv");
    args.extend(["--max-attempts", "30", "--concurrency", "4"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);

    let log = log(&job.api).await;
    assert!(
        log.iter()
            .any(|e| e["method"] == "GET" && e["status"] == 200),
        "premise: the list call succeeded: {:?}",
        log.iter()
            .filter(|e| e["method"] == "GET")
            .collect::<Vec<_>>()
    );
    let faults = job.api.stats().await["faults_injected"].clone();
    assert!(
        faults["fail_after_commit"].as_u64().unwrap() > 0
            && faults["drop_after_commit"].as_u64().unwrap() > 0,
        "premise: answers were lost after the write: {faults}"
    );
    let posted = names_sent(&log, "POST");
    assert!(
        old.iter().all(|n| !posted.contains(n)),
        "a listed name is never POSTed"
    );
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 90);
    let rows = by_name(&rows);
    for name in &new {
        assert_eq!(rows[name]["_status"], "created", "{:?}", rows[name]);
    }
    for name in &old {
        assert_eq!(rows[name]["_status"], "exists", "{:?}", rows[name]);
        assert_eq!(rows[name]["_attempts"], "0", "{:?}", rows[name]);
    }
    assert_eq!(
        held(&job.api).await,
        all.into_iter().collect(),
        "each name once, nothing else"
    );
}

#[tokio::test]
async fn a_lost_put_claims_no_workspace_the_list_did_not_show() {
    // t-0001 exists, but the list does not show it: its POST is refused, its first PUT
    // is applied and answered too late, its second answered.
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(["t-0001".to_owned()].into()),
        unlisted: std::sync::Mutex::new(["t-0001".to_owned()].into()),
        slow_first_put: true,
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--on-exists", "update", "--timeout", "1s"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let puts = hostile.log().iter().filter(|(m, _)| m == "PUT").count();
    assert_eq!(puts, 2, "the lost PUT and its retry: {:?}", hostile.log());
    let (_, rows) = dir.results("r.csv");
    let got = statuses(&rows);
    assert_eq!(got["t-0001"], "updated", "a PUT creates nothing: {rows:?}");
    assert_eq!(got["t-0002"], "created");
}

#[tokio::test]
async fn after_a_rollback_a_resumed_run_that_lists_creates_its_tenants_again() {
    let job = Job::new().await;
    let input = job.dir.write("t.csv", &tenants("t", 5));
    let mut args = job.args("r.csv");
    args.retain(|a| a != "--no-preflight");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let results = job.path("r.csv");
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(job.api.workspace_names().await.is_empty());
    // The results still say created; the list says otherwise, and wins.
    let again = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    // Nothing to send: nothing is sent, not even the list, and the records stand.
    assert_eq!(methods(&job.api).await.len(), 5 + 1 + 5, "{}", again.stderr);
    assert!(job.api.workspace_names().await.is_empty());
    // A rerun with a new tenant lists the workspaces first, and the list wins over the
    // records: what it does not show is created again.
    let more = job.dir.write("more.csv", &tenants("t", 6));
    let again = dbprov_with(&["run", &more, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(job.api.workspace_names().await.len(), 6);
    let posts = methods(&job.api)
        .await
        .iter()
        .filter(|m| *m == "POST")
        .count();
    assert_eq!(posts, 11, "five, and six: five again and the new one");
}

#[tokio::test]
async fn a_server_cannot_write_the_notes_a_rollback_reads() {
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(["t-0001".to_owned(), "t-0002".to_owned()].into()),
        taken_saying: Some(
            "taken (it was not listed before the run) an earlier attempt got no clear answer: the workspace may exist",
        ),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--no-preflight", "--on-exists", "fail"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    // The rollback takes the same API and key, not the run's --on-exists.
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..args.len() - 2]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(
        undo.stderr.contains("nothing to roll back"),
        "{}",
        undo.stderr
    );
    assert!(!hostile.log().iter().any(|(m, _)| m == "DELETE"));
}

#[tokio::test]
async fn a_name_the_list_misses_keeps_the_record_that_it_was_created() {
    let hostile = Hostile::start(HostileState::default()).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let args = hostile_args(&hostile, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // The list lags: it misses one of the workspaces the run created.
    hostile
        .state
        .unlisted
        .lock()
        .unwrap()
        .insert("t-0001".to_owned());
    for extra in [
        &[][..],
        &["--on-exists", "fail"][..],
        &["--on-exists", "update"][..],
    ] {
        let mut again = args.clone();
        again.extend(extra.iter().map(|s| s.to_string()));
        again.push("--resume".into());
        let rerun = dbprov_with(&["run", &input], &again).await;
        assert_eq!(rerun.exit, 0, "{extra:?}: {}", rerun.stderr);
        let (_, rows) = dir.results("r.csv");
        assert!(
            rows.iter().all(|r| r["_status"] == "created"),
            "{extra:?}: {rows:?}"
        );
    }
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let deletes = hostile.log().iter().filter(|(m, _)| m == "DELETE").count();
    assert_eq!(deletes, 3, "all three, the missed one too");
}

#[tokio::test]
async fn a_record_the_list_misses_stands_through_a_lost_answer_of_its_resend() {
    // t-0002 is there before the job; the job creates t-0001 and t-0003.
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(["t-0002".to_owned()].into()),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--timeout", "1s"].map(str::to_owned));
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // The list misses two of them, and their re-sent POSTs get no answer in time.
    for name in ["t-0001", "t-0002"] {
        hostile
            .state
            .unlisted
            .lock()
            .unwrap()
            .insert(name.to_owned());
        hostile
            .state
            .slow_next_post
            .lock()
            .unwrap()
            .insert(name.to_owned());
    }
    let mut again = args.clone();
    again.push("--resume".into());
    let rerun = dbprov_with(&["run", &input], &again).await;
    assert_eq!(rerun.exit, 0, "{}", rerun.stderr);
    let (_, rows) = dir.results("r.csv");
    let got = statuses(&rows);
    assert_eq!(
        (&*got["t-0001"], &*got["t-0002"], &*got["t-0003"]),
        ("created", "exists", "created"),
        "{rows:?}"
    );
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert_eq!(
        *hostile.state.existing.lock().unwrap(),
        ["t-0002".to_owned()].into(),
        "only what was there before is left"
    );
}

#[tokio::test]
async fn a_created_record_whose_resend_is_refused_claims_nothing_later() {
    let hostile = Hostile::start(HostileState::default()).await;
    let dir = JobDir::new();
    let input = dir.write(
        "t.csv",
        "name,connectionType,datasourceName\nw1,DATASOURCE,x\n",
    );
    let args = hostile_args(&hostile, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // A new tenant: the rerun lists the workspaces.
    let input = dir.write(
        "t2.csv",
        "name,connectionType,datasourceName\nw1,DATASOURCE,x\nw2,DATASOURCE,x\n",
    );
    // Someone deletes it, and its datasource: the resend is refused, clearly.
    hostile.state.existing.lock().unwrap().remove("w1");
    hostile
        .state
        .refused
        .lock()
        .unwrap()
        .insert("w1".to_owned());
    let mut again = args.clone();
    again.push("--resume".into());
    assert_eq!(dbprov_with(&["run", &input], &again).await.exit, 1);
    let (_, rows) = dir.results("r.csv");
    assert_eq!(
        rows[0]["_error_code"], "INVALID_DATASOURCE_NAME",
        "{rows:?}"
    );
    assert!(!rows[0]["_error_message"].contains("may"), "{rows:?}");
    // Someone else creates it: not the job's, so neither created nor rolled back.
    hostile.state.refused.lock().unwrap().clear();
    hostile
        .state
        .existing
        .lock()
        .unwrap()
        .insert("w1".to_owned());
    assert_eq!(dbprov_with(&["run", &input], &again).await.exit, 0);
    let (_, rows) = dir.results("r.csv");
    assert_eq!(rows[0]["_status"], "exists", "{rows:?}");
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(hostile.state.existing.lock().unwrap().contains("w1"));
}
