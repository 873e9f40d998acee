use super::*;

fn pattern(json: &str) -> Pattern {
    match Pattern::parse(json) {
        Ok(pattern) => pattern,
        Err(e) => panic!("{json} should parse: {e}"),
    }
}

fn event(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

/// Whether `pattern` matches `event`, checking that `explain` agrees.
fn check(pattern_json: &str, event_json: &str) -> bool {
    let p = pattern(pattern_json);
    let e = event(event_json);
    let matched = p.matches(&e);
    assert_eq!(
        matched,
        p.explain(&e).is_ok(),
        "explain disagrees with matches for {pattern_json} on {event_json}"
    );
    matched
}

fn refused(pattern_json: &str) -> PatternError {
    match Pattern::parse(pattern_json) {
        Ok(p) => panic!("{pattern_json} should be refused, compiled to {p:?}"),
        Err(e) => e,
    }
}

fn mismatch(pattern_json: &str, event_json: &str) -> Mismatch {
    pattern(pattern_json)
        .explain(&event(event_json))
        .unwrap_err()
}

// eb-event-patterns.html: the EC2 example event and its pattern.
const EC2_EVENT: &str = r#"{
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "111122223333",
    "time": "2017-12-22T18:43:48Z",
    "region": "us-west-1",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}
}"#;

// aws/event-ruler README, "Ruler by Example": the event its examples use.
const RULER_EVENT: &str = r#"{
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running"
    }
}"#;

#[test]
fn exact_strings_select_the_doc_ec2_termination_event() {
    // eb-event-patterns.html, "processes all Amazon EC2 instance-termination events".
    let p = r#"{
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        "detail": {"state": ["terminated"]}
    }"#;
    assert!(check(p, EC2_EVENT));
    let running = EC2_EVENT.replace("\"terminated\"", "\"running\"");
    assert!(!check(p, &running));
}

#[test]
fn exact_strings_are_case_sensitive() {
    assert!(!check(r#"{"source": ["AWS.EC2"]}"#, EC2_EVENT));
}

#[test]
fn exact_numbers_match_the_doc_macie_risk_scores() {
    // eb-event-patterns.html, "Value matching": risk-score 80 and trigger risk 8.
    let p = r#"{
        "source": ["aws.macie"],
        "detail-type": ["Macie Alert"],
        "detail": {"risk-score": [80], "trigger": {"risk": [8]}}
    }"#;
    let e = r#"{
        "source": "aws.macie", "detail-type": "Macie Alert",
        "detail": {"risk-score": 80, "trigger": {"alert-type": "basic", "risk": 8}}
    }"#;
    assert!(check(p, e));
    assert!(!check(p, &e.replace("\"risk\": 8", "\"risk\": 9")));
}

#[test]
fn numbers_equal_however_written_300_matches_300_0_and_3e2() {
    // event-ruler's JsonRuleCompiler pairs each number with a numeric-equality match.
    assert!(check(r#"{"n": [300]}"#, r#"{"n": 300.0}"#));
    assert!(check(r#"{"n": [300]}"#, r#"{"n": 3.0e2}"#));
    assert!(check(r#"{"n": [3.0]}"#, r#"{"n": 3}"#));
    assert!(!check(r#"{"n": [300]}"#, r#"{"n": 301}"#));
}

#[test]
fn numbers_beyond_the_numeric_range_still_equal_themselves() {
    // Account ids written as numbers are too large to compare numerically.
    assert!(check(r#"{"a": [123456789012]}"#, r#"{"a": 123456789012}"#));
    assert!(!check(r#"{"a": [123456789012]}"#, r#"{"a": 123456789013}"#));
}

#[test]
fn numbers_and_strings_never_equal_each_other() {
    assert!(!check(r#"{"n": [300]}"#, r#"{"n": "300"}"#));
    assert!(!check(r#"{"n": ["300"]}"#, r#"{"n": 300}"#));
}

#[test]
fn booleans_match_booleans_only() {
    assert!(check(r#"{"ok": [true]}"#, r#"{"ok": true}"#));
    assert!(!check(r#"{"ok": [true]}"#, r#"{"ok": false}"#));
    assert!(!check(r#"{"ok": [true]}"#, r#"{"ok": "true"}"#));
    assert!(check(r#"{"ok": [false]}"#, r#"{"ok": false}"#));
}

#[test]
fn null_and_empty_string_match_themselves_and_not_each_other() {
    // eb-event-patterns-null-values.html: the autoscaling event.
    let e = r#"{"detail": {"eventVersion": "", "responseElements": null}}"#;
    assert!(check(r#"{"detail": {"eventVersion": [""]}}"#, e));
    assert!(check(r#"{"detail": {"responseElements": [null]}}"#, e));
    // "Null values and empty strings are not interchangeable."
    assert!(!check(r#"{"detail": {"eventVersion": [null]}}"#, e));
    assert!(!check(r#"{"detail": {"responseElements": [""]}}"#, e));
}

#[test]
fn null_does_not_match_an_absent_field() {
    assert!(!check(
        r#"{"detail": {"responseElements": [null]}}"#,
        r#"{"detail": {}}"#
    ));
}

#[test]
fn values_in_an_array_are_alternatives() {
    // eb-create-pattern.html, "Matching event values": aws.ec2 or aws.fargate.
    let p = r#"{"source": ["aws.ec2", "aws.fargate"]}"#;
    assert!(check(p, r#"{"source": "aws.fargate"}"#));
    assert!(check(p, r#"{"source": "aws.ec2"}"#));
    assert!(!check(p, r#"{"source": "aws.lambda"}"#));
}

#[test]
fn every_field_must_match() {
    let p = r#"{"source": ["aws.ec2"], "detail": {"state": ["running"]}}"#;
    assert!(!check(p, EC2_EVENT));
    assert!(check(p, RULER_EVENT));
}

#[test]
fn fields_the_pattern_does_not_name_are_ignored() {
    assert!(check(r#"{"region": ["us-west-1"]}"#, EC2_EVENT));
}

#[test]
fn an_event_array_matches_when_it_intersects_the_pattern() {
    // eb-event-patterns-arrays.html: the resources example.
    let p = r#"{"resources": [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
    ]}"#;
    let e = r#"{"resources": [
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate",
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
    ]}"#;
    assert!(check(p, e));
    assert!(!check(p, r#"{"resources": ["arn:aws:s3:::bucket"]}"#));
    assert!(!check(p, r#"{"resources": []}"#));
}

#[test]
fn nested_fields_must_have_the_same_nesting_in_the_event() {
    // eb-create-pattern.html: "with the same nesting structure".
    assert!(!check(
        r#"{"detail": {"state": ["terminated"]}}"#,
        r#"{"state": "terminated"}"#
    ));
    assert!(!check(
        r#"{"detail": {"state": ["terminated"]}}"#,
        r#"{"detail": "terminated"}"#
    ));
    assert!(check(
        r#"{"a": {"b": {"c": ["deep"]}}}"#,
        r#"{"a": {"b": {"c": "deep", "d": 1}}}"#
    ));
}

#[test]
fn nested_fields_in_an_array_of_objects_match_within_one_element() {
    // event-ruler README, "JSON Array Matching": the employees example.
    let e = r#"{"employees": [
        {"firstName": "John", "lastName": "Doe"},
        {"firstName": "Anna", "lastName": "Smith"},
        {"firstName": "Peter", "lastName": "Jones"}
    ]}"#;
    assert!(check(r#"{"employees": {"firstName": ["Anna"]}}"#, e));
    assert!(!check(
        r#"{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}"#,
        e
    ));
    assert!(check(
        r#"{"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}"#,
        e
    ));
}

#[test]
fn nested_arrays_of_objects_are_crushed() {
    // event-ruler README: "This works for multi-level arrays too".
    let e = r#"{"employees": [
        [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
        [{"firstName": "Peter", "lastName": "Jones"}]
    ]}"#;
    assert!(check(r#"{"employees": {"firstName": ["Peter"]}}"#, e));
    assert!(!check(
        r#"{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}"#,
        e
    ));
}

#[test]
fn prefix_matches_the_start_of_strings() {
    // eb-create-pattern-operators.html, "Prefix matching": time starts with 2017-10-02.
    let p = r#"{"time": [{"prefix": "2017-10-02"}]}"#;
    assert!(check(p, r#"{"time": "2017-10-02T18:43:48Z"}"#));
    assert!(!check(p, r#"{"time": "2017-10-03T18:43:48Z"}"#));
    assert!(!check(r#"{"n": [{"prefix": "12"}]}"#, r#"{"n": 123}"#));
}

#[test]
fn prefix_equals_ignore_case_ignores_case() {
    // eb-create-pattern-operators.html, "Prefix matching while ignoring case".
    let p = r#"{"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}"#;
    assert!(check(p, r#"{"detail": {"service": "EventBridge"}}"#));
    assert!(check(p, r#"{"detail": {"service": "eventbridge"}}"#));
    assert!(check(p, r#"{"detail": {"service": "EVENTB"}}"#));
    assert!(!check(p, r#"{"detail": {"service": "Lambda"}}"#));
}

#[test]
fn suffix_matches_the_end_of_strings_and_its_ignore_case_form_ignores_case() {
    // eb-create-pattern-operators.html, "Suffix matching" and "... while ignoring case".
    let p = r#"{"FileName": [{"suffix": ".png"}]}"#;
    assert!(check(p, r#"{"FileName": "image.png"}"#));
    assert!(!check(p, r#"{"FileName": "image.PNG"}"#));
    let p = r#"{"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}}"#;
    assert!(check(p, r#"{"detail": {"FileName": "image.PNG"}}"#));
    assert!(check(p, r#"{"detail": {"FileName": "image.Png"}}"#));
    assert!(!check(p, r#"{"detail": {"FileName": "image.jpg"}}"#));
    assert!(!check(p, r#"{"detail": {"FileName": "png"}}"#));
}

#[test]
fn equals_ignore_case_compares_whole_strings_regardless_of_case() {
    // eb-create-pattern-operators.html, "Equals (ignore case)": Name is "Alice".
    let p = r#"{"Name": [{"equals-ignore-case": "alice"}]}"#;
    assert!(check(p, r#"{"Name": "Alice"}"#));
    assert!(check(p, r#"{"Name": "ALICE"}"#));
    assert!(!check(p, r#"{"Name": "Alicia"}"#));
    assert!(check(
        r#"{"s": [{"equals-ignore-case": "école"}]}"#,
        r#"{"s": "ÉCOLE"}"#
    ));
}

#[test]
fn wildcard_matches_any_run_of_characters() {
    // event-ruler README "Wildcard matching", and the AWS blog's "dir/*.png".
    let p = r#"{"source": [{"wildcard": "Simple*Service"}]}"#;
    assert!(check(p, r#"{"source": "Simple Notification Service"}"#));
    assert!(check(p, r#"{"source": "SimpleService"}"#));
    assert!(!check(p, r#"{"source": "Simple Service X"}"#));
    let p = r#"{"key": [{"wildcard": "dir/*.png"}]}"#;
    assert!(check(p, r#"{"key": "dir/a/b.png"}"#));
    assert!(!check(p, r#"{"key": "other/b.png"}"#));
    assert!(check(r#"{"key": [{"wildcard": "*"}]}"#, r#"{"key": ""}"#));
    assert!(!check(r#"{"key": [{"wildcard": "*"}]}"#, r#"{"key": 5}"#));
}

#[test]
fn wildcard_escapes_match_a_literal_star_and_backslash() {
    // event-ruler README: "\*" is a star, "\\" a backslash.
    let p = r#"{"f": [{"wildcard": "a\\*b*"}]}"#;
    assert!(check(p, r#"{"f": "a*bcd"}"#));
    assert!(!check(p, r#"{"f": "axbcd"}"#));
    assert!(check(
        r#"{"f": [{"wildcard": "a\\\\b"}]}"#,
        r#"{"f": "a\\b"}"#
    ));
}

#[test]
fn wildcard_refuses_consecutive_stars_and_other_escapes() {
    let e = refused(r#"{"f": [{"wildcard": "a**b"}]}"#);
    assert_eq!(e.path, "f[0].wildcard");
    assert!(e.message.contains("consecutive"), "{e}");
    let e = refused(r#"{"f": [{"wildcard": "a\\b"}]}"#);
    assert_eq!(e.path, "f[0].wildcard");
    assert!(e.message.contains("escape"), "{e}");
    assert_eq!(
        refused(r#"{"f": [{"wildcard": "a\\"}]}"#).path,
        "f[0].wildcard"
    );
}

#[test]
fn anything_but_a_string_needs_the_field_and_passes_other_types() {
    // eb-create-pattern-operators.html, "Anything-but matching": state initializing.
    let p = r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#;
    assert!(check(p, r#"{"detail": {"state": "running"}}"#));
    assert!(!check(p, r#"{"detail": {"state": "initializing"}}"#));
    assert!(!check(p, r#"{"detail": {}}"#));
    assert!(check(p, r#"{"detail": {"state": 5}}"#));
    assert!(check(p, r#"{"detail": {"state": null}}"#));
}

#[test]
fn anything_but_a_number_excludes_it_numerically() {
    // eb-create-pattern-operators.html: x-limit anything-but 123.
    let p = r#"{"detail": {"x-limit": [{"anything-but": 123}]}}"#;
    assert!(check(p, r#"{"detail": {"x-limit": 124}}"#));
    assert!(!check(p, r#"{"detail": {"x-limit": 123}}"#));
    assert!(!check(p, r#"{"detail": {"x-limit": 123.0}}"#));
    assert!(check(p, r#"{"detail": {"x-limit": "123"}}"#));
}

#[test]
fn anything_but_lists_exclude_each_value() {
    // eb-create-pattern-operators.html: a list of strings, then of numbers.
    let p = r#"{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}"#;
    assert!(check(p, r#"{"detail": {"state": "running"}}"#));
    assert!(!check(p, r#"{"detail": {"state": "stopped"}}"#));
    assert!(!check(p, r#"{"detail": {"state": "overloaded"}}"#));
    let p = r#"{"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}"#;
    assert!(check(p, r#"{"detail": {"x-limit": 150}}"#));
    assert!(!check(p, r#"{"detail": {"x-limit": 200}}"#));
}

#[test]
fn anything_but_on_an_array_passes_when_one_element_is_not_excluded() {
    // SNS numeric-value-matching.html (the same matcher): [100, 50] against [100, 500].
    let p = r#"{"price": [{"anything-but": [100, 500]}]}"#;
    assert!(check(p, r#"{"price": [100, 50]}"#));
    assert!(!check(p, r#"{"price": [100, 500]}"#));
    assert!(!check(p, r#"{"price": []}"#));
}

#[test]
fn anything_but_prefix_and_suffix_exclude_by_start_and_end() {
    // eb-create-pattern-operators.html: "Anything-but (begins with)" and "(ends with)".
    let p = r#"{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}"#;
    assert!(check(p, r#"{"detail": {"state": "running"}}"#));
    assert!(!check(p, r#"{"detail": {"state": "initializing"}}"#));
    let p = r#"{"FileName": [{"anything-but": {"suffix": ".png"}}]}"#;
    assert!(check(p, r#"{"FileName": "a.jpg"}"#));
    assert!(!check(p, r#"{"FileName": "a.png"}"#));
    let p = r#"{"Region": [{"anything-but": {"prefix": ["us-", "eu-"]}}]}"#;
    assert!(check(p, r#"{"Region": "ap-south-1"}"#));
    assert!(!check(p, r#"{"Region": "eu-west-1"}"#));
}

#[test]
fn anything_but_equals_ignore_case_excludes_every_casing() {
    // eb-create-pattern-operators.html, "Anything-but (ignore case)".
    let p = r#"{"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}"#;
    assert!(!check(p, r#"{"state": "INITIALIZING"}"#));
    assert!(check(p, r#"{"state": "running"}"#));
    let p = r#"{"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OVERLOADED"]}}]}"#;
    assert!(!check(p, r#"{"state": "stopped"}"#));
    assert!(!check(p, r#"{"state": "Overloaded"}"#));
    assert!(check(p, r#"{"state": "running"}"#));
}

#[test]
fn anything_but_wildcard_excludes_matching_paths() {
    // eb-create-pattern-operators.html: FilePath anything-but wildcard "*/lib/*".
    let p = r#"{"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}"#;
    assert!(!check(p, r#"{"FilePath": "/usr/lib/libc.so"}"#));
    assert!(check(p, r#"{"FilePath": "/usr/bin/env"}"#));
}

#[test]
fn numeric_ranges_select_the_doc_example() {
    // eb-create-pattern-operators.html, "Numeric matching".
    let p = r#"{"detail": {
        "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}],
        "x-limit": [{"numeric": ["=", 3.018e2]}]
    }}"#;
    assert!(check(p, RULER_EVENT));
    assert!(!check(
        p,
        &RULER_EVENT.replace("\"c-count\": 5", "\"c-count\": 0")
    ));
    assert!(!check(
        p,
        &RULER_EVENT.replace("\"c-count\": 5", "\"c-count\": 6")
    ));
    assert!(!check(
        p,
        &RULER_EVENT.replace("\"d-count\": 3", "\"d-count\": 10")
    ));
}

#[test]
fn numeric_equality_treats_3_and_3_0_alike() {
    let p = r#"{"n": [{"numeric": ["=", 3]}]}"#;
    assert!(check(p, r#"{"n": 3.0}"#));
    assert!(check(p, r#"{"n": 3}"#));
    assert!(!check(p, r#"{"n": 3.5}"#));
}

#[test]
fn numeric_bounds_are_inclusive_or_exclusive_as_written() {
    let p = r#"{"n": [{"numeric": [">=", 1, "<", 2]}]}"#;
    assert!(check(p, r#"{"n": 1}"#));
    assert!(check(p, r#"{"n": 1.5}"#));
    assert!(!check(p, r#"{"n": 2}"#));
    assert!(!check(p, r#"{"n": 0.999999}"#));
    assert!(check(
        r#"{"n": [{"numeric": ["<=", -1.5]}]}"#,
        r#"{"n": -2}"#
    ));
}

#[test]
fn numeric_matches_json_numbers_only() {
    // eb-create-pattern-operators.html: "works with values that are JSON numbers".
    let p = r#"{"n": [{"numeric": [">", 0]}]}"#;
    assert!(!check(p, r#"{"n": "5"}"#));
    assert!(!check(p, r#"{"n": true}"#));
    assert!(!check(p, r#"{}"#));
    // Beyond ±5e9 an event number is not compared.
    assert!(!check(p, r#"{"n": 6e9}"#));
}

#[test]
fn numeric_on_an_array_matches_when_one_element_is_in_range() {
    assert!(check(
        r#"{"vals": [{"numeric": [">", 0, "<", 10]}]}"#,
        r#"{"vals": [100, 5, 200]}"#
    ));
    assert!(!check(
        r#"{"vals": [{"numeric": [">", 0, "<", 10]}]}"#,
        r#"{"vals": [100, 200]}"#
    ));
}

#[test]
fn exists_true_needs_a_leaf_and_null_is_one() {
    let p = r#"{"detail": {"c-count": [{"exists": true}]}}"#;
    assert!(check(p, r#"{"detail": {"c-count": 5}}"#));
    assert!(check(p, r#"{"detail": {"c-count": null}}"#));
    assert!(check(p, r#"{"detail": {"c-count": ["a"]}}"#));
    assert!(!check(p, r#"{"detail": {}}"#));
    assert!(!check(p, r#"{}"#));
}

#[test]
fn exists_false_matches_an_absent_field() {
    // eb-create-pattern-operators.html, "Exists matching": no detail.c-count.
    let p = r#"{"detail": {"c-count": [{"exists": false}]}}"#;
    let e = r#"{
        "detail-type": ["EC2 Instance State-change Notification"],
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
        "detail": {"state": ["initializing", "running"]}
    }"#;
    assert!(check(p, e));
    assert!(check(p, r#"{}"#));
    assert!(!check(p, r#"{"detail": {"c-count": 0}}"#));
    assert!(!check(p, r#"{"detail": {"c-count": null}}"#));
}

#[test]
fn exists_sees_only_leaves_so_an_object_does_not_exist() {
    // eb-create-pattern-operators.html: "also matches ... because c-count isn't a leaf node".
    let e = r#"{"detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}}"#;
    assert!(check(r#"{"detail": {"c-count": [{"exists": false}]}}"#, e));
    assert!(!check(r#"{"detail": {"c-count": [{"exists": true}]}}"#, e));
    // Nor does an empty array, which has no leaves.
    assert!(check(r#"{"tags": [{"exists": false}]}"#, r#"{"tags": []}"#));
}

#[test]
fn exists_false_in_an_array_of_objects_is_judged_per_element() {
    // event-ruler correctness-cases.json, "exists-false: absent" and "... present".
    let p = r#"{"d": {"a": [{"exists": true}], "b": [{"exists": false}]}}"#;
    assert!(check(p, r#"{"d": [{"a": 1}]}"#));
    assert!(!check(p, r#"{"d": [{"a": 1, "b": 2}]}"#));
    assert!(check(p, r#"{"d": [{"a": 1, "b": 2}, {"a": 3}]}"#));
}

#[test]
fn matchers_of_every_kind_mix_in_one_array() {
    let p = r#"{"f": ["a", {"prefix": "b"}, {"exists": false}]}"#;
    assert!(check(p, r#"{}"#));
    assert!(check(p, r#"{"f": "a"}"#));
    assert!(check(p, r#"{"f": "bcd"}"#));
    assert!(!check(p, r#"{"f": "zzz"}"#));
}

#[test]
fn cidr_matches_ipv4_addresses_in_the_block() {
    // eb-create-pattern-operators.html, "IP address matching": 10.0.0.0/24.
    let p = r#"{"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}"#;
    assert!(check(p, r#"{"detail": {"sourceIPAddress": "10.0.0.255"}}"#));
    assert!(check(p, r#"{"detail": {"sourceIPAddress": "10.0.0.0"}}"#));
    assert!(!check(p, r#"{"detail": {"sourceIPAddress": "10.0.1.1"}}"#));
    assert!(!check(
        p,
        r#"{"detail": {"sourceIPAddress": "not an address"}}"#
    ));
    assert!(!check(
        p,
        r#"{"detail": {"sourceIPAddress": "::ffff:10.0.0.1"}}"#
    ));
    assert!(check(
        r#"{"ip": [{"cidr": "0.0.0.0/0"}]}"#,
        r#"{"ip": "203.0.113.9"}"#
    ));
    assert!(check(
        r#"{"ip": [{"cidr": "192.0.2.7/32"}]}"#,
        r#"{"ip": "192.0.2.7"}"#
    ));
}

#[test]
fn cidr_matches_ipv6_addresses_in_the_block() {
    // event-ruler README, "IP Address Matching": "This also works with IPv6 addresses".
    let p = r#"{"ip": [{"cidr": "2001:db8::/32"}]}"#;
    assert!(check(p, r#"{"ip": "2001:db8:1::1"}"#));
    assert!(check(
        p,
        r#"{"ip": "2001:0DB8:ffff:ffff:ffff:ffff:ffff:ffff"}"#
    ));
    assert!(!check(p, r#"{"ip": "2001:db9::1"}"#));
    assert!(!check(p, r#"{"ip": "10.0.0.1"}"#));
}

#[test]
fn an_ip_address_string_matches_other_spellings_of_it() {
    // event-ruler's JsonRuleCompiler turns an address literal into an address match.
    let p = r#"{"ip": ["2001:db8::1"]}"#;
    assert!(check(p, r#"{"ip": "2001:0db8:0:0:0:0:0:1"}"#));
    assert!(check(p, r#"{"ip": "2001:db8::1"}"#));
    assert!(!check(p, r#"{"ip": "2001:db8::2"}"#));
}

#[test]
fn the_doc_complex_example_combines_operators() {
    // eb-create-pattern-operators.html, "Complex example with multiple matching",
    // with event-ruler README's source-ip line.
    let p = r#"{
        "time": [{"prefix": "2017-10-02"}],
        "detail": {
            "state": [{"anything-but": "initializing"}],
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"anything-but": [100, 200, 300]}],
            "source-ip": [{"cidr": "10.0.0.0/8"}]
        }
    }"#;
    assert!(check(p, RULER_EVENT));
    assert!(!check(
        p,
        &RULER_EVENT.replace("\"running\"", "\"initializing\"")
    ));
}

#[test]
fn or_at_the_top_level_selects_either_alternative() {
    // event-ruler README, "Normal Or": source && (metricName || namespace).
    let p = r#"{
        "source": ["aws.cloudwatch"],
        "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {"namespace": ["AWS/EC2", "AWS/ES"]}
        ]
    }"#;
    assert!(check(
        p,
        r#"{"source": "aws.cloudwatch", "metricName": "ReadLatency"}"#
    ));
    assert!(check(
        p,
        r#"{"source": "aws.cloudwatch", "namespace": "AWS/ES"}"#
    ));
    assert!(!check(
        p,
        r#"{"source": "aws.cloudwatch", "namespace": "AWS/RDS"}"#
    ));
    assert!(!check(
        p,
        r#"{"source": "aws.ec2", "metricName": "CPUUtilization"}"#
    ));
}

#[test]
fn or_nested_in_an_object_applies_to_its_fields() {
    // event-ruler README, "Parallel Or".
    let p = r#"{
        "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {"namespace": ["AWS/EC2", "AWS/ES"]}
        ],
        "detail": {
            "$or": [
                {"source": ["aws.cloudwatch"]},
                {"detail-type": ["CloudWatch Alarm State Change"]}
            ]
        }
    }"#;
    assert!(check(
        p,
        r#"{"namespace": "AWS/EC2", "detail": {"detail-type": "CloudWatch Alarm State Change"}}"#
    ));
    assert!(!check(
        p,
        r#"{"namespace": "AWS/EC2", "detail": {"source": "aws.ec2"}}"#
    ));
    assert!(!check(p, r#"{"detail": {"source": "aws.cloudwatch"}}"#));
}

#[test]
fn or_alternatives_hold_and_and_further_ors() {
    // event-ruler README, "Nested Or and And".
    let p = r#"{
        "source": ["aws.cloudwatch"],
        "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {
                "metricType": ["MetricType"],
                "namespace": ["AWS/EC2", "AWS/ES"],
                "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]
            },
            {"scope": ["Service"]}
        ]
    }"#;
    assert!(check(
        p,
        r#"{"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/ES", "spaceId": 1000}"#
    ));
    assert!(!check(
        p,
        r#"{"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/ES", "spaceId": 1}"#
    ));
    assert!(!check(
        p,
        r#"{"source": "aws.cloudwatch", "namespace": "AWS/ES", "metricId": 1234}"#
    ));
    assert!(check(
        p,
        r#"{"source": "aws.cloudwatch", "scope": "Service"}"#
    ));
}

#[test]
fn an_event_that_is_not_an_object_has_no_fields() {
    let absent = pattern(r#"{"a": [{"exists": false}]}"#);
    assert!(absent.matches(&Value::from(5)));
    assert!(absent.matches(&event("[1, 2]")));
    let present = pattern(r#"{"a": ["x"]}"#);
    assert!(!present.matches(&Value::Null));
    assert!(present.explain(&Value::Null).is_err());
}

#[test]
fn a_leaf_that_is_not_an_array_is_refused() {
    let e = refused(r#"{"detail": {"state": "running"}}"#);
    assert_eq!(e.path, "detail.state");
    assert!(e.message.contains("must be an array"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("pattern at detail.state: {}", e.message)
    );
    assert_eq!(refused(r#"{"n": 5}"#).path, "n");
}

#[test]
fn an_unknown_operator_is_refused_where_it_is() {
    let e = refused(r#"{"detail": {"state": [{"contains": "x"}]}}"#);
    assert_eq!(e.path, "detail.state[0]");
    assert!(e.message.contains("unknown operator \"contains\""), "{e}");
    let e = refused(r#"{"x": [{"prefix": "a", "suffix": "b"}]}"#);
    assert_eq!(e.path, "x[0]");
    assert!(e.message.contains("exactly one key"), "{e}");
    assert_eq!(refused(r#"{"x": [{}]}"#).path, "x[0]");
}

#[test]
fn bad_numeric_expressions_are_refused() {
    let e = refused(r#"{"x": [{"numeric": ["<", 10, ">", 0]}]}"#);
    assert_eq!(e.path, "x[0].numeric[0]");
    let e = refused(r#"{"x": [{"numeric": [">", "ten"]}]}"#);
    assert_eq!(e.path, "x[0].numeric[1]");
    let e = refused(r#"{"x": [{"numeric": ["!=", 3]}]}"#);
    assert_eq!(e.path, "x[0].numeric[0]");
    let e = refused(r#"{"x": [{"numeric": [">", 5, "<", 1]}]}"#);
    assert_eq!(e.path, "x[0].numeric");
    assert!(e.message.contains("empty"), "{e}");
    let e = refused(r#"{"x": [{"numeric": ["=", 1e10]}]}"#);
    assert_eq!(e.path, "x[0].numeric[1]");
    assert!(e.message.contains("5e9"), "{e}");
    assert_eq!(refused(r#"{"x": [{"numeric": "5"}]}"#).path, "x[0].numeric");
    assert_eq!(
        refused(r#"{"x": [{"numeric": [">", 1, "<", 5, "<"]}]}"#).path,
        "x[0].numeric"
    );
    assert_eq!(
        refused(r#"{"x": [{"numeric": ["=", 1, "<", 5]}]}"#).path,
        "x[0].numeric[0]"
    );
}

#[test]
fn bad_cidr_blocks_are_refused() {
    for bad in [
        "10.0.0.0/33",
        "10.0.0.1/24",
        "10.0.0.0",
        "ten/8",
        "10.0.0.0/x",
        "2001:db8::/129",
    ] {
        let e = refused(&format!(r#"{{"ip": [{{"cidr": "{bad}"}}]}}"#));
        assert_eq!(e.path, "ip[0].cidr", "{bad}: {e}");
    }
    assert!(
        refused(r#"{"ip": [{"cidr": "10.0.0.1/24"}]}"#)
            .message
            .contains("10.0.0.0/24")
    );
    assert_eq!(refused(r#"{"ip": [{"cidr": 10}]}"#).path, "ip[0].cidr");
}

#[test]
fn empty_arrays_and_objects_are_refused() {
    assert_eq!(refused(r#"{"source": []}"#).path, "source");
    assert_eq!(refused(r#"{"detail": {}}"#).path, "detail");
    assert_eq!(refused(r#"{}"#).path, "(root)");
    assert_eq!(
        refused(r#"{"x": [{"anything-but": []}]}"#).path,
        "x[0].anything-but"
    );
}

#[test]
fn a_pattern_must_be_a_json_object() {
    assert_eq!(refused(r#"["aws.ec2"]"#).path, "(root)");
    let e = refused(r#"{"source": ["#);
    assert_eq!(e.path, "(root)");
    assert!(e.message.contains("not valid JSON"), "{e}");
    assert_eq!(refused(r#"{"x": [["a"]]}"#).path, "x[0]");
}

#[test]
fn bad_operator_arguments_are_refused() {
    assert_eq!(refused(r#"{"x": [{"exists": "yes"}]}"#).path, "x[0].exists");
    assert_eq!(refused(r#"{"x": [{"prefix": 5}]}"#).path, "x[0].prefix");
    assert_eq!(
        refused(r#"{"x": [{"prefix": {"wildcard": "a"}}]}"#).path,
        "x[0].prefix"
    );
    assert_eq!(
        refused(r#"{"x": [{"equals-ignore-case": ["a"]}]}"#).path,
        "x[0].equals-ignore-case"
    );
    assert_eq!(
        refused(r#"{"x": [{"anything-but": ["a", 1]}]}"#).path,
        "x[0].anything-but"
    );
    assert_eq!(
        refused(r#"{"x": [{"anything-but": [null]}]}"#).path,
        "x[0].anything-but[0]"
    );
    assert_eq!(
        refused(r#"{"x": [{"anything-but": true}]}"#).path,
        "x[0].anything-but"
    );
    assert_eq!(
        refused(r#"{"x": [{"anything-but": {"prefix": ""}}]}"#).path,
        "x[0].anything-but.prefix"
    );
    assert_eq!(
        refused(r#"{"x": [{"anything-but": {"numeric": [">", 1]}}]}"#).path,
        "x[0].anything-but.numeric"
    );
    assert_eq!(
        refused(r#"{"x": [{"anything-but": {"equals-ignore-case": [1]}}]}"#).path,
        "x[0].anything-but.equals-ignore-case[0]"
    );
}

#[test]
fn malformed_or_is_refused() {
    assert_eq!(refused(r#"{"$or": [{"a": ["b"]}]}"#).path, "$or");
    assert_eq!(refused(r#"{"$or": {"a": ["b"]}}"#).path, "$or");
    assert_eq!(refused(r#"{"$or": [["a"], {"b": ["c"]}]}"#).path, "$or[0]");
    assert_eq!(refused(r#"{"$or": [{"a": ["b"]}, {}]}"#).path, "$or[1]");
    // event-ruler refuses operator names as fields inside $or.
    let e = refused(r#"{"$or": [{"prefix": ["a"]}, {"b": ["c"]}]}"#);
    assert_eq!(e.path, "$or[0].prefix");
    assert_eq!(
        refused(r#"{"d": {"$or": [{"b": ["c"]}, {"e": {"numeric": [1]}}]}}"#).path,
        "d.$or[1].e.numeric"
    );
}

#[test]
fn nesting_deeper_than_32_objects_is_refused() {
    fn nested(levels: usize) -> String {
        let mut json = r#"["x"]"#.to_string();
        for _ in 0..levels {
            json = format!(r#"{{"a": {json}}}"#);
        }
        json
    }
    assert!(Pattern::parse(&nested(32)).is_ok());
    let e = refused(&nested(33));
    assert!(e.message.contains("32"), "{e}");
}

#[test]
fn more_than_1000_values_are_refused() {
    let values: Vec<String> = (0..1001).map(|i| format!("\"v{i}\"")).collect();
    let e = refused(&format!(r#"{{"f": [{}]}}"#, values.join(", ")));
    assert_eq!(e.path, "f[1000]");
    assert!(e.message.contains("1000"), "{e}");
    let values: Vec<String> = (0..1000).map(|i| format!("\"v{i}\"")).collect();
    let p = pattern(&format!(r#"{{"f": [{}]}}"#, values.join(", ")));
    assert!(p.matches(&event(r#"{"f": "v999"}"#)));
    assert!(!p.matches(&event(r#"{"f": "v1000"}"#)));
}

#[test]
fn explain_names_the_field_value_and_wanted_numeric_range() {
    let m = mismatch(
        r#"{"detail": {"amount": [{"numeric": [">", 100]}]}}"#,
        r#"{"detail": {"amount": 12}}"#,
    );
    assert_eq!(m.path, "detail.amount");
    assert_eq!(m.reason, r#"is 12, not numeric [">", 100]"#);
    assert_eq!(
        m.to_string(),
        r#"detail.amount is 12, not numeric [">", 100]"#
    );
}

#[test]
fn explain_says_when_a_field_is_absent() {
    let m = mismatch(r#"{"source": ["aws.ec2"]}"#, r#"{"detail-type": "x"}"#);
    assert_eq!(
        m,
        Mismatch {
            path: "source".into(),
            reason: "is absent".into()
        }
    );
    assert_eq!(m.to_string(), "source is absent");
    let m = mismatch(r#"{"detail": {"state": ["x"]}}"#, r#"{}"#);
    assert_eq!(m.to_string(), "detail.state is absent");
}

#[test]
fn explain_lists_the_alternatives_of_a_failed_or() {
    let m = mismatch(
        r#"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}]}"#,
        r#"{"source": "aws.cloudwatch", "namespace": "AWS/RDS"}"#,
    );
    assert_eq!(m.path, "$or");
    assert_eq!(
        m.reason,
        r#"matched none of its 2 alternatives: metricName is absent; namespace is "AWS/RDS", not one of "AWS/EC2", "AWS/ES""#
    );
    let m = mismatch(
        r#"{"detail": {"$or": [{"a": ["1"]}, {"b": ["2"]}]}}"#,
        r#"{"detail": {"a": "2"}}"#,
    );
    assert_eq!(m.path, "detail.$or");
}

#[test]
fn explain_descends_into_arrays_of_objects() {
    let m = mismatch(
        r#"{"detail": {"items": {"price": [{"numeric": [">", 100]}]}}}"#,
        r#"{"detail": {"items": [{"price": 12}, {"price": 50}]}}"#,
    );
    assert_eq!(m.path, "detail.items.price");
    assert!(
        m.reason.starts_with(r#"is 12, not numeric [">", 100]"#),
        "{m}"
    );
    assert!(
        m.reason.contains("none of the 2 objects in detail.items"),
        "{m}"
    );
}

#[test]
fn explain_shows_values_of_every_kind_and_cuts_long_ones() {
    let m = mismatch(r#"{"s": ["a", {"prefix": "b"}]}"#, r#"{"s": "zzz"}"#);
    assert_eq!(m.to_string(), r#"s is "zzz", not one of "a", prefix "b""#);
    let m = mismatch(r#"{"c": [{"exists": false}]}"#, r#"{"c": 5}"#);
    assert_eq!(m.to_string(), "c is 5, not exists false");
    let long = "é".repeat(200);
    let m = mismatch(r#"{"s": ["a"]}"#, &format!(r#"{{"s": "{long}"}}"#));
    assert!(m.reason.contains('…'), "{m}");
    assert!(m.reason.len() < 200, "{m}");
}

#[test]
fn explain_is_ok_for_a_match() {
    let p = pattern(r#"{"source": ["aws.ec2"]}"#);
    assert_eq!(p.explain(&event(EC2_EVENT)), Ok(()));
}

#[test]
fn patterns_can_be_cloned_and_built_from_values() {
    let value = event(r#"{"source": [{"prefix": "aws."}]}"#);
    let p = Pattern::from_value(&value).unwrap();
    let copy = p.clone();
    assert!(copy.matches(&event(EC2_EVENT)));
    assert!(format!("{copy:?}").contains("Prefix"));
}

#[test]
fn top_level_fields_are_those_the_pattern_and_its_alternatives_read() {
    let p = Pattern::parse(
        r#"{"source":["a"],"detail":{"x":[1]},"$or":[{"region":["eu"]},{"account":["1"],"source":["b"]}]}"#,
    )
    .unwrap();
    assert_eq!(
        p.top_level_fields(),
        ["account", "detail", "region", "source"]
    );
}
