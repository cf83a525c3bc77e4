fn main() {
    procguard_common::run("RLIMIT", check_rlimit_match::check);
}
