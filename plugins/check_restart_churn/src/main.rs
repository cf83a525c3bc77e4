fn main() {
    procguard_common::run("RESTART_CHURN", check_restart_churn::check);
}
